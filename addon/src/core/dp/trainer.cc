// The DP-SGD step (Abadi et al. 2016, "Deep Learning with Differential Privacy", Algorithm 1) with
// Poisson sampling and the normalisation of Opacus (divide the noisy sum by the expected batch size
// q·N, not by the realised one, which would leak the batch size), plus non-private training,
// evaluation, checkpoints and export. A step builds the whole update before it touches anything and
// undoes the optimizer update when it produced a non-finite parameter, so no NaN weight is ever kept.
//
// The model's author is an adversary (DESIGN.md, "Who is trusted with what"): in private training
// nothing a record holds may change whether a step, or the trainer's creation, succeeds, nor any
// message. So a failing sample is dropped rather than failing the step, the creation probe runs on
// synthetic zeros, and the messages that can still reach the author name no data-derived number.
// The one exception is TrainerConfig.fail_fast, for the pre-flight on synthetic data only: there a
// failure is the answer wanted, with the model's own message.
#include "core/dp/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <sstream>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include <ATen/ATen.h>
#include <caffe2/serialize/inline_container.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/optim.h>
#include <torch/script.h>
#include <torch/serialize/archive.h>

#include "core/dp/grad_engine.h"
#include "core/dp/graph_engine.h"
#include "core/dp/noise.h"
#include "core/dp/sampler.h"
#include "core/dtype.h"
#include "core/error.h"
#include "core/model.h"
#include "core/text.h"

namespace bastion::core::dp {
namespace {

// Bumped when the layout of State() changes; Restore refuses other versions.
constexpr int64_t kStateFormat = 1;
// Physical batch of evaluation and prediction when the config sets no maximum.
constexpr int64_t kDefaultEvalBatch = 256;

struct Tensors {
  std::vector<at::Tensor> inputs;
  at::Tensor labels;  // undefined when absent
  int64_t samples = 0;
};

// Wraps and checks a dataset: at least one input, every tensor with the same first dimension.
Tensors WrapData(const HostData& data, bool need_labels, std::vector<std::string>& problems) {
  Tensors out;
  if (data.inputs.empty()) problems.push_back("the data has no input tensor (inputs.0)");
  std::vector<std::pair<std::string, int64_t>> firsts;
  auto add = [&](const HostTensor& host) -> at::Tensor {
    at::Tensor tensor = WrapHostTensor(host);
    if (tensor.dim() == 0) {
      problems.push_back("tensor '" + host.name + "' is a scalar; its first dimension must be the samples");
    } else {
      firsts.emplace_back(host.name, tensor.size(0));
    }
    return tensor;
  };
  for (const HostTensor& host : data.inputs) out.inputs.push_back(add(host));
  if (data.labels) {
    out.labels = add(*data.labels);
  } else if (need_labels) {
    problems.push_back("the data has no labels");
  }
  if (!firsts.empty()) {
    out.samples = firsts.front().second;
    for (const auto& [name, size] : firsts) {
      if (size != out.samples) {
        problems.push_back("tensor '" + name + "' has " + std::to_string(size) + " samples but '" +
                           firsts.front().first + "' has " + std::to_string(out.samples) +
                           " (first dimensions must match)");
      }
    }
    if (out.samples == 0) problems.push_back("the dataset is empty (0 samples)");
  }
  return out;
}

// `samples` samples of zeros with the per-sample shapes and dtypes of `from` (public information).
Batch SyntheticBatch(const Tensors& from, int64_t samples) {
  const auto zeros = [samples](const at::Tensor& like) {
    std::vector<int64_t> shape(like.sizes().begin(), like.sizes().end());
    shape[0] = samples;
    return at::zeros(shape, like.options());
  };
  Batch batch;
  for (const at::Tensor& input : from.inputs) batch.inputs.push_back(zeros(input));
  if (from.labels.defined()) batch.labels = zeros(from.labels);
  return batch;
}

// The model's own message for a failure of its code, on one line: for the TorchScript interpreter's
// report, whose first line only says that an operation failed, the first unindented line after its
// tracebacks ("RuntimeError: mat1 and mat2 shapes cannot be multiplied (2x4 and 5x16)"); for any other
// exception its first line, without libtorch's backtrace.
std::string ModelMessage(const std::exception& error) {
  const auto* torch_error = dynamic_cast<const c10::Error*>(&error);
  const std::string text = torch_error ? torch_error->what_without_backtrace() : error.what();
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") != std::string::npos) lines.push_back(line);
  }
  if (lines.empty()) return "an exception without a message";
  const std::string interpreter = "The following operation failed in the TorchScript interpreter";
  if (lines.front().rfind(interpreter, 0) == 0) {
    bool in_traceback = false;
    for (const std::string& line : lines) {
      if (line.rfind("Traceback of TorchScript", 0) == 0) {
        in_traceback = true;
      } else if (in_traceback && line.front() != ' ' && line.front() != '\t') {
        return line;
      }
    }
  }
  return lines.front();
}

// Rethrows the exception in flight (call only inside a catch block) where the inputs were synthetic:
// the trainer's own errors and allocation failures as they are, any other failure of the model's code
// as Error(kInvalidArgument) with `context` and the model's message, which then depends on public
// shapes and dtypes only.
[[noreturn]] void RethrowAsModelFailure(const std::string& context) {
  try {
    throw;
  } catch (const Error&) {
    throw;
  } catch (const std::bad_alloc&) {
    throw;
  } catch (const c10::OutOfMemoryError&) {
    throw;
  } catch (const std::exception& error) {
    Refuse(context + ": " + ModelMessage(error));
  } catch (...) {
    Refuse(context + ": an exception that is not a std::exception");
  }
}

void ThrowProblems(const std::vector<std::string>& problems) {
  if (problems.empty()) return;
  std::string message = problems.size() == 1 ? "Invalid trainer: "
                                             : "Invalid trainer (" + std::to_string(problems.size()) + " problems): ";
  for (size_t i = 0; i < problems.size(); ++i) message += (i ? "; " : "") + problems[i];
  Refuse(message);
}

bool IsFiniteAtLeast(double value, double min) { return std::isfinite(value) && value >= min; }

void CheckOptimizer(const OptimizerConfig& optimizer, std::vector<std::string>& problems) {
  const bool sgd = optimizer.type == "sgd";
  if (!sgd && optimizer.type != "adam" && optimizer.type != "adamw") {
    problems.push_back("optimizer.type is '" + optimizer.type + "'; expected one of sgd, adam, adamw");
    return;
  }
  if (!(std::isfinite(optimizer.learning_rate) && optimizer.learning_rate > 0)) {
    problems.push_back("optimizer.learningRate must be a finite number > 0, got " +
                       NumberText(optimizer.learning_rate));
  }
  if (optimizer.weight_decay && !IsFiniteAtLeast(*optimizer.weight_decay, 0)) {
    problems.push_back("optimizer.weightDecay must be a finite number ≥ 0, got " + NumberText(*optimizer.weight_decay));
  }
  if (sgd) {
    if (!IsFiniteAtLeast(optimizer.momentum, 0)) {
      problems.push_back("optimizer.momentum must be a finite number ≥ 0, got " + NumberText(optimizer.momentum));
    }
    if (!IsFiniteAtLeast(optimizer.dampening, 0)) {
      problems.push_back("optimizer.dampening must be a finite number ≥ 0, got " + NumberText(optimizer.dampening));
    }
    if (optimizer.nesterov && !(optimizer.momentum > 0 && optimizer.dampening == 0)) {
      problems.push_back("optimizer.nesterov needs momentum > 0 and dampening 0");
    }
    return;
  }
  for (const auto& [name, beta] :
       {std::pair{"optimizer.betas[0]", optimizer.beta1}, std::pair{"optimizer.betas[1]", optimizer.beta2}}) {
    if (!(beta >= 0 && beta < 1)) problems.push_back(std::string(name) + " must be in [0, 1), got " + NumberText(beta));
  }
  if (!(std::isfinite(optimizer.eps) && optimizer.eps > 0)) {
    problems.push_back("optimizer.eps must be a finite number > 0, got " + NumberText(optimizer.eps));
  }
}

std::unique_ptr<torch::optim::Optimizer> MakeOptimizer(const OptimizerConfig& config,
                                                       const std::vector<at::Tensor>& params) {
  if (config.type == "sgd") {
    return std::make_unique<torch::optim::SGD>(params, torch::optim::SGDOptions(config.learning_rate)
                                                           .momentum(config.momentum)
                                                           .dampening(config.dampening)
                                                           .nesterov(config.nesterov)
                                                           .weight_decay(config.weight_decay.value_or(0)));
  }
  if (config.type == "adam") {
    return std::make_unique<torch::optim::Adam>(params, torch::optim::AdamOptions(config.learning_rate)
                                                            .betas({config.beta1, config.beta2})
                                                            .eps(config.eps)
                                                            .weight_decay(config.weight_decay.value_or(0)));
  }
  return std::make_unique<torch::optim::AdamW>(params, torch::optim::AdamWOptions(config.learning_rate)
                                                           .betas({config.beta1, config.beta2})
                                                           .eps(config.eps)
                                                           .weight_decay(config.weight_decay.value_or(0.01)));
}

using OptimizerState = ska::flat_hash_map<std::string, std::unique_ptr<torch::optim::OptimizerParamState>>;

// The tensors of one parameter's optimizer state, for deep copies and shape checks.
std::vector<at::Tensor*> StateTensors(torch::optim::OptimizerParamState& state) {
  if (auto* sgd = dynamic_cast<torch::optim::SGDParamState*>(&state)) return {&sgd->momentum_buffer()};
  if (auto* adam = dynamic_cast<torch::optim::AdamParamState*>(&state)) {
    return {&adam->exp_avg(), &adam->exp_avg_sq(), &adam->max_exp_avg_sq()};
  }
  if (auto* adamw = dynamic_cast<torch::optim::AdamWParamState*>(&state)) {
    return {&adamw->exp_avg(), &adamw->exp_avg_sq(), &adamw->max_exp_avg_sq()};
  }
  return {};
}

// A deep copy: clone() of a param state copies the struct, whose tensors the next step updates in place.
OptimizerState CopyState(const OptimizerState& state) {
  OptimizerState copy;
  for (const auto& [key, value] : state) {
    std::unique_ptr<torch::optim::OptimizerParamState> cloned = value->clone();
    for (at::Tensor* tensor : StateTensors(*cloned)) {
      if (tensor->defined()) *tensor = tensor->clone();
    }
    copy.emplace(key, std::move(cloned));
  }
  return copy;
}

std::string ParamKey(const at::Tensor& param) { return c10::guts::to_string(param.unsafeGetTensorImpl()); }

// A small contiguous float tensor (a batch's losses or norms, a bias's gradient): one loop, not two
// tensor operations. Otherwise usually one pass: a NaN or ±inf element makes the sum NaN or ±inf, so a
// finite sum proves every element finite. A non-finite sum may also be an overflow of finite elements;
// the exact elementwise check decides then.
bool AllFinite(const at::Tensor& tensor) {
  if (!at::isFloatingType(tensor.scalar_type())) return true;
  if (tensor.numel() <= 4096 && tensor.is_contiguous() && tensor.scalar_type() == at::kFloat) {
    const float* values = tensor.data_ptr<float>();
    return std::all_of(values, values + tensor.numel(), [](float v) { return std::isfinite(v); });
  }
  if (std::isfinite(tensor.sum().item<double>())) return true;
  return tensor.isfinite().all().item<bool>();
}

// Reads from an owned copy of a state, clamping reads to its size (libtorch's array overload
// copies without a bounds check).
class StateReader {
 public:
  explicit StateReader(std::string bytes) : bytes_(std::move(bytes)) {}
  size_t Read(uint64_t pos, void* buf, size_t n) const {
    if (pos >= bytes_.size()) return 0;
    const size_t count = std::min(n, bytes_.size() - static_cast<size_t>(pos));
    std::memcpy(buf, bytes_.data() + pos, count);
    return count;
  }
  size_t Size() const { return bytes_.size(); }

 private:
  std::string bytes_;
};

// A copy of a TorchScript archive without its .debug_pkl records: they hold the source ranges of
// the code the model was scripted from (with paths of the machine that saved it, and its source
// text), which the trained model's recipients need not see; the model loads the same without them.
std::string WithoutDebugInfo(const std::string& archive) {
  std::istringstream in(archive);
  caffe2::serialize::PyTorchStreamReader reader(&in);
  std::string out;
  caffe2::serialize::PyTorchStreamWriter writer([&out](const void* data, size_t size) {
    out.append(static_cast<const char*>(data), size);
    return size;
  });
  writer.setMinVersion(reader.version());
  const std::string debug_suffix = ".debug_pkl";
  for (const std::string& name : reader.getAllRecords()) {
    if (name == "version" || name == ".data/version") continue;  // writeEndOfFile writes it
    if (name.size() >= debug_suffix.size() &&
        name.compare(name.size() - debug_suffix.size(), debug_suffix.size(), debug_suffix) == 0) {
      continue;
    }
    auto [data, size] = reader.getRecord(name);
    writer.writeRecord(name, data.get(), size);
  }
  writer.writeEndOfFile();
  return out;
}

}  // namespace

struct Trainer::Impl {
  torch::jit::Module module;
  bool original_training = false;
  std::unique_ptr<GraphGradEngine> engine;  // holds a reference to module: Impl never moves
  std::vector<std::string> names;           // engine->TrainableParameters()
  std::vector<at::Tensor> params;           // the module's own tensors, in that order
  TrainerConfig config;
  LossSpec loss;
  ClipSpec clip;
  double noise_stddev = 0;  // σ·C, or σ·sqrt(Σ_k C_k²) per layer
  // Whether a clipped sum of finite-norm samples can still overflow: C = ∞ (σ = 0), N·C near the largest
  // float, or parameters narrower than float32. Decided from the config alone, never from data.
  bool sums_may_overflow = true;
  Tensors data;
  std::unique_ptr<torch::optim::Optimizer> optimizer;
  at::Generator generator;                   // non-private shuffling
  std::unique_ptr<GaussianStream> sampling;  // Poisson sampling (private): a keystream of its own
  NoiseStreams noise;
  std::optional<ShuffledBatches> batches;
  int64_t step = 0;

  at::Tensor Forward(const std::vector<at::Tensor>& inputs) {
    std::vector<c10::IValue> stack(inputs.begin(), inputs.end());
    const c10::IValue output = module.forward(std::move(stack));
    if (!output.isTensor()) Refuse("The model's forward returns " + output.tagKind() + ", not a tensor");
    return output.toTensor();
  }

  Batch Gather(const Tensors& from, const at::Tensor& indices) const {
    Batch batch;
    for (const at::Tensor& input : from.inputs) batch.inputs.push_back(input.index_select(0, indices));
    if (from.labels.defined()) batch.labels = from.labels.index_select(0, indices);
    return batch;
  }

  // A private physical batch of `part`, padded to PaddedSize rows with copies of its first sample.
  Batch PaddedGather(const at::Tensor& part) const {
    const int64_t n = part.size(0);
    const int64_t padding = PaddedSize(n) - n;
    if (padding == 0) return Gather(data, part);
    Batch batch = Gather(data, at::cat({part, part.narrow(0, 0, 1).expand({padding})}));
    batch.padding = padding;
    return batch;
  }

  // Poisson sampling gives nearly every step a batch size of its own, and oneDNN builds (JIT-compiles)
  // its convolution kernels for each input shape: a size not seen before cost the GroupNorm ResNet
  // 100–200 ms on top of an 80 ms step, and the MNIST CNN's private step ran at 20.0 ms against 15.8 ms
  // with one fixed size (issue 17). A new size also grows the heap (fresh pages, each a page fault):
  // later measured at 40–75 ms on a 50 ms step, most of it system time, until the heap settles (about
  // 150 steps). So for a model with convolutions a physical batch of n samples runs as the next multiple
  // of a granule g, the largest power of two up to √(qN), the expected size's standard deviation: about
  // a dozen sizes, all seen within the first steps, for g/(2qN) more rows on average (3 % at qN = 128),
  // which other models would pay for nothing. Never beyond maxPhysicalBatchSize, the memory bound the
  // user set.
  int64_t PaddedSize(int64_t n) const {
    if (!engine->CompilesPerShape()) return n;
    const double expected = config.sample_rate * static_cast<double>(data.samples);
    int64_t granule = 1;
    while (static_cast<double>(4 * granule * granule) <= expected) granule *= 2;
    const int64_t padded = (n + granule - 1) / granule * granule;
    return config.max_physical_batch_size > 0 ? std::min(padded, std::max(n, config.max_physical_batch_size)) : padded;
  }

  [[noreturn]] static void NonFinite(int64_t number, const std::string& what) {
    throw Error(ErrorCode::kNonFinite, "Step " + std::to_string(number) + ": " + what +
                                           "; the step was not applied and the parameters are unchanged");
  }

  // Non-private training only. The message names no count: it is a fixed string.
  static void CheckLosses(const at::Tensor& losses, int64_t number) {
    if (!losses.isfinite().all().item<bool>()) NonFinite(number, "a per-sample loss is NaN or infinite");
  }

  // Private training: the clipped sum of one physical batch of `part` (dataset indices), or of those
  // of its samples that do not fail. The batch runs once; when it throws or yields a non-finite loss,
  // norm or sum, each of its samples runs alone through the same engine and the failing ones are
  // recorded in `dropped` and contribute nothing. Every exception is caught, whatever its type: what
  // a record makes the model do must not decide whether the step goes on. The re-run makes such a
  // step slower: its timing is a residual channel (README), far weaker than a failed job.
  ClippedSum ClippedSumDropping(const at::Tensor& part, DroppedSamples& dropped) {
    if (config.fail_fast) return ClippedSumFailing(part);
    try {
      ClippedSum sum = engine->ComputeClippedSum(PaddedGather(part), loss, clip);
      if (IsUsable(sum, sums_may_overflow)) return sum;
    } catch (...) {
    }
    ClippedSum total;
    total.grads.resize(params.size());
    std::vector<at::Tensor> losses;
    const int64_t* index = part.data_ptr<int64_t>();
    for (int64_t i = 0; i < part.size(0); ++i) {
      ClippedSum one;
      try {
        one = engine->ComputeClippedSum(Gather(data, part.narrow(0, i, 1)), loss, clip);
      } catch (...) {
        dropped.exception.push_back(index[i]);
        continue;
      }
      if (!one.losses.defined() || !one.losses.isfinite().all().item<bool>()) {
        dropped.non_finite_loss.push_back(index[i]);
        continue;
      }
      if (!IsUsable(one, sums_may_overflow)) {
        dropped.non_finite_gradient.push_back(index[i]);
        continue;
      }
      for (size_t p = 0; p < total.grads.size(); ++p) {
        if (!one.grads[p].defined()) continue;
        total.grads[p] = total.grads[p].defined() ? total.grads[p].add(one.grads[p]) : one.grads[p];
      }
      losses.push_back(one.losses);
    }
    total.losses = losses.empty() ? at::empty({0}, at::kFloat) : at::cat(losses);
    return total;
  }

  // fail_fast (synthetic data only): the clipped sum of the whole physical batch, or the failure, with
  // the model's message; a non-finite loss, norm or sum is an error rather than a reason to drop.
  ClippedSum ClippedSumFailing(const at::Tensor& part) {
    ClippedSum sum;
    try {
      sum = engine->ComputeClippedSum(PaddedGather(part), loss, clip);
    } catch (...) {
      RethrowAsModelFailure("Step " + std::to_string(step + 1) + ": the model fails on a batch of " +
                            std::to_string(part.size(0)) + " synthetic samples");
    }
    if (!sum.losses.defined() || !sum.losses.isfinite().all().item<bool>()) {
      NonFinite(step + 1, "a per-sample loss of the synthetic batch is NaN or infinite");
    }
    if (!IsUsable(sum, /*check_sums=*/true))
      NonFinite(step + 1, "a per-sample gradient of the synthetic batch is NaN or infinite");
    return sum;
  }

  // Finite losses and norms, and, where they could overflow, finite clipped sums. With finite norms
  // each clipped g_i has norm at most C, so a sum of B of them is bounded by B·C ≤ N·C.
  static bool IsUsable(const ClippedSum& sum, bool check_sums) {
    if (!sum.losses.defined() || !AllFinite(sum.losses)) return false;
    if (!sum.per_sample_norms.defined() || !AllFinite(sum.per_sample_norms)) return false;
    if (!check_sums) return true;
    return std::all_of(sum.grads.begin(), sum.grads.end(),
                       [](const at::Tensor& g) { return !g.defined() || AllFinite(g); });
  }

  // Sets the gradients, steps the optimizer, and undoes the step when a parameter became non-finite.
  void Apply(const std::vector<at::Tensor>& grads, int64_t number) {
    std::vector<at::Tensor> before;
    for (const at::Tensor& param : params) before.push_back(param.detach().clone());
    OptimizerState state_before = CopyState(optimizer->state());
    for (size_t p = 0; p < params.size(); ++p) params[p].mutable_grad() = grads[p];
    try {
      optimizer->step();
    } catch (...) {
      for (at::Tensor& param : params) param.mutable_grad() = at::Tensor();
      throw;
    }
    for (at::Tensor& param : params) param.mutable_grad() = at::Tensor();
    for (size_t p = 0; p < params.size(); ++p) {
      if (AllFinite(params[p])) continue;
      {
        at::NoGradGuard no_grad;
        for (size_t q = 0; q < params.size(); ++q) params[q].copy_(before[q]);
      }
      optimizer->state() = std::move(state_before);
      NonFinite(number, "the optimizer update made parameter '" + names[p] + "' NaN or infinite");
    }
  }

  StepResult Step() {
    const auto start = std::chrono::steady_clock::now();
    const int64_t number = step + 1;
    module.train(true);
    const at::Tensor indices =
        config.is_private ? PoissonSample(data.samples, config.sample_rate, *sampling) : batches->Next(generator);
    DroppedSamples dropped;
    const int64_t count = indices.size(0);
    // Undefined until a physical batch contributes: the first contribution is taken as it is (a fresh
    // tensor of this step's), later ones are added to it.
    std::vector<at::Tensor> grads(params.size());
    const auto accumulate = [&](size_t p, const at::Tensor& grad) {
      if (!grad.defined()) return;
      if (grads[p].defined()) {
        grads[p].add_(grad);
      } else if (grad.sizes() == params[p].sizes() && grad.scalar_type() == params[p].scalar_type()) {
        grads[p] = grad;
      } else {
        grads[p] = at::zeros_like(params[p]).add_(grad);
      }
    };
    double loss_sum = 0;
    double clipped_loss_sum = 0;
    const int64_t chunk =
        config.max_physical_batch_size > 0 ? config.max_physical_batch_size : std::max<int64_t>(count, 1);
    for (int64_t begin = 0; begin < count; begin += chunk) {
      const at::Tensor part = indices.narrow(0, begin, std::min(chunk, count - begin));
      at::Tensor losses;
      if (config.is_private) {
        ClippedSum sum = ClippedSumDropping(part, dropped);
        losses = sum.losses;
        for (size_t p = 0; p < grads.size(); ++p) accumulate(p, sum.grads[p]);
      } else {
        const Batch batch = Gather(data, part);
        losses = PerSampleLoss(Forward(batch.inputs), batch.labels, loss);
        CheckLosses(losses.detach(), number);
        // Mean over the logical batch, accumulated over its physical batches.
        const at::Tensor objective = losses.sum() / static_cast<double>(count);
        std::vector<at::Tensor> batch_grads = torch::autograd::grad({objective}, params, {}, false, false, true);
        for (size_t p = 0; p < grads.size(); ++p) accumulate(p, batch_grads[p]);
      }
      const at::Tensor exact = losses.detach().to(at::kDouble);
      loss_sum += exact.sum().item<double>();
      if (config.loss_bound > 0) clipped_loss_sum += exact.clamp(0, config.loss_bound).sum().item<double>();
    }
    for (size_t p = 0; p < grads.size(); ++p) {
      if (!grads[p].defined()) grads[p] = at::zeros_like(params[p]);  // an empty batch, or no gradient
    }
    int64_t non_finite = -1;
    // Poisson normalisation by the expected batch size: the realised size stays private.
    const double scale = config.is_private ? 1.0 / (config.sample_rate * static_cast<double>(data.samples)) : 1.0;
    if (config.is_private && noise_stddev > 0) {
      non_finite = noise.AddGaussianNoise(grads, noise_stddev, scale);  // checks the result in the same pass
    } else {
      for (size_t p = 0; p < grads.size() && non_finite < 0; ++p) {
        if (scale != 1.0) grads[p].mul_(scale);
        if (!AllFinite(grads[p])) non_finite = static_cast<int64_t>(p);
      }
    }
    if (non_finite >= 0) {
      NonFinite(number,
                "the gradient of parameter '" + names[static_cast<size_t>(non_finite)] + "' is NaN or infinite");
    }
    Apply(grads, number);
    step = number;
    StepResult result;
    result.step = number;
    result.samples = count;
    result.dropped = std::move(dropped);
    result.loss_sum = loss_sum;
    result.clipped_loss_sum = clipped_loss_sum;
    result.duration_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    return result;
  }

  int64_t EvalChunk() const {
    return config.max_physical_batch_size > 0 ? config.max_physical_batch_size : kDefaultEvalBatch;
  }

  // Per-sample losses and correct counts of one evaluation batch, [B] double each; throws as the model does.
  std::pair<at::Tensor, at::Tensor> Judge(const Batch& batch) {
    const at::Tensor output = Forward(batch.inputs);
    const at::Tensor losses = PerSampleLoss(output, batch.labels, loss).to(at::kDouble);
    at::Tensor correct;
    if (loss.kind == LossSpec::Kind::kCrossEntropy || loss.kind == LossSpec::Kind::kNll) {
      correct = output.argmax(1).eq(batch.labels).to(at::kDouble);
    } else if (loss.kind == LossSpec::Kind::kBceWithLogits) {
      const at::Tensor target = batch.labels.reshape(output.sizes());
      correct = output.gt(0).eq(target.gt(0.5)).reshape({output.size(0), -1}).sum(1).to(at::kDouble);
    } else {
      correct = at::zeros({output.size(0)}, at::kDouble);
    }
    return {losses, correct};
  }

  // As the private step: a chunk that throws is re-run one sample at a time, and a sample that throws
  // or has a non-finite loss counts as incorrect and adds nothing to the loss, so that no record
  // decides whether an evaluation (which releases a noisy correct count) succeeds.
  Evaluation Evaluate(const Tensors& from) {
    at::NoGradGuard no_grad;
    module.eval();
    Evaluation result;
    result.samples = from.samples;
    double loss_sum = 0;
    double correct = 0;
    const int64_t chunk = EvalChunk();
    const auto add = [&](const at::Tensor& losses, const at::Tensor& right) {
      const at::Tensor ok = losses.isfinite();
      result.failed += losses.size(0) - ok.sum().item<int64_t>();
      loss_sum += at::where(ok, losses, at::zeros_like(losses)).sum().item<double>();
      correct += at::where(ok, right, at::zeros_like(right)).sum().item<double>();
    };
    for (int64_t begin = 0; begin < from.samples; begin += chunk) {
      const at::Tensor indices = at::arange(begin, std::min(begin + chunk, from.samples), at::kLong);
      if (config.fail_fast) {
        std::pair<at::Tensor, at::Tensor> judged;
        try {
          judged = Judge(Gather(from, indices));
        } catch (...) {
          RethrowAsModelFailure("Evaluation: the model fails on a batch of " + std::to_string(indices.size(0)) +
                                " synthetic samples");
        }
        if (judged.first.size(0) != indices.size(0) || judged.second.size(0) != indices.size(0)) {
          Refuse("Evaluation: the model judged " + std::to_string(judged.first.size(0)) + " of a batch of " +
                 std::to_string(indices.size(0)) + " synthetic samples");
        }
        if (!judged.first.isfinite().all().item<bool>()) {
          throw Error(ErrorCode::kNonFinite, "Evaluation: a per-sample loss of the synthetic batch is NaN or infinite");
        }
        add(judged.first, judged.second);
        continue;
      }
      try {
        const auto [losses, right] = Judge(Gather(from, indices));
        if (losses.size(0) == indices.size(0) && right.size(0) == indices.size(0)) {
          add(losses, right);
          continue;
        }
      } catch (...) {
      }
      for (int64_t i = 0; i < indices.size(0); ++i) {
        try {
          const auto [losses, right] = Judge(Gather(from, indices.narrow(0, i, 1)));
          if (losses.size(0) == 1 && right.size(0) == 1) {
            add(losses, right);
            continue;
          }
        } catch (...) {
        }
        result.failed += 1;
      }
    }
    result.mean_loss = loss_sum / static_cast<double>(from.samples);
    // What is judged is public: samples, or label elements for bce_with_logits (labels shaped as the output).
    double judged = 0;
    if (loss.kind == LossSpec::Kind::kCrossEntropy || loss.kind == LossSpec::Kind::kNll) {
      judged = static_cast<double>(from.samples);
    } else if (loss.kind == LossSpec::Kind::kBceWithLogits) {
      judged = static_cast<double>(from.labels.numel());
    }
    if (judged > 0) result.accuracy = correct / judged;
    return result;
  }
};

Trainer::Trainer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Trainer::~Trainer() = default;

std::unique_ptr<Trainer> Trainer::Create(std::string model, HostData data, const TrainerConfig& config) {
  auto impl = std::make_unique<Impl>();
  std::vector<std::string> problems;

  if (const std::optional<LossSpec> loss = ParseLoss(config.loss, problems)) impl->loss = *loss;
  CheckOptimizer(config.optimizer, problems);
  if (config.max_physical_batch_size < 0) problems.push_back("maxPhysicalBatchSize must be ≥ 1");
  if (!(std::isfinite(config.loss_bound) && config.loss_bound >= 0)) {
    problems.push_back("lossBound (L) must be a finite number > 0, got " + NumberText(config.loss_bound));
  }
  if (config.is_private) {
    if (!(config.sample_rate > 0 && config.sample_rate <= 1)) {
      problems.push_back("sampleRate (q) must be in (0, 1], got " + NumberText(config.sample_rate));
    }
    if (!IsFiniteAtLeast(config.noise_multiplier, 0)) {
      problems.push_back("noiseMultiplier (σ) must be a finite number ≥ 0, got " + NumberText(config.noise_multiplier));
    }
    auto check_bound = [&](const std::string& name, double bound) {
      if (!(bound > 0)) {
        problems.push_back(name + " (C) must be > 0, got " + NumberText(bound));
      } else if (std::isinf(bound) && config.noise_multiplier != 0) {
        problems.push_back(name + " (C) is infinite, which only a noiseMultiplier of 0 allows (the noise is σ·C)");
      }
    };
    if (config.per_layer.empty()) {
      check_bound("maxGradNorm", config.max_grad_norm);
    } else {
      for (size_t k = 0; k < config.per_layer.size(); ++k) {
        check_bound("perLayer[" + std::to_string(k) + "].maxGradNorm", config.per_layer[k].max_grad_norm);
      }
    }
  } else if (config.batch_size < 1) {
    problems.push_back("batchSize must be an integer ≥ 1, got " + std::to_string(config.batch_size));
  }
  impl->data = WrapData(data, /*need_labels=*/true, problems);
  ThrowProblems(problems);

  impl->module = LoadModule(std::move(model));
  impl->original_training = impl->module.is_training();
  impl->engine = MakeGraphGradEngine(impl->module);
  impl->names = impl->engine->TrainableParameters();
  std::unordered_map<std::string, at::Tensor> by_name;
  for (const auto& parameter : impl->module.named_parameters(/*recurse=*/true))
    by_name.emplace(parameter.name, parameter.value);
  for (const std::string& name : impl->names) impl->params.push_back(by_name.at(name));

  if (config.is_private) {
    if (config.per_layer.empty()) {
      impl->clip.max_grad_norm = config.max_grad_norm;
      impl->noise_stddev = config.noise_multiplier * (config.noise_multiplier == 0 ? 0 : config.max_grad_norm);
    } else {
      // Per-layer clipping bounds the whole per-sample gradient by C = sqrt(Σ_k C_k²); the noise is
      // σ·C on every coordinate (Opacus's convention), so σ keeps its meaning for the accountant.
      // Noise σ·C_k on group k alone would amount to a noise multiplier of σ/sqrt(K).
      std::unordered_map<std::string, int64_t> index;
      for (size_t p = 0; p < impl->names.size(); ++p) index.emplace(impl->names[p], static_cast<int64_t>(p));
      std::vector<int> seen(impl->names.size(), 0);
      double squared = 0;
      for (size_t k = 0; k < config.per_layer.size(); ++k) {
        std::vector<int64_t> group;
        for (const std::string& name : config.per_layer[k].parameters) {
          const auto it = index.find(name);
          if (it == index.end()) {
            problems.push_back("perLayer[" + std::to_string(k) + "] names '" + name +
                               "', which is not a trainable parameter");
            continue;
          }
          if (seen[it->second]++ > 0) problems.push_back("parameter '" + name + "' is in more than one perLayer group");
          group.push_back(it->second);
        }
        if (group.empty()) problems.push_back("perLayer[" + std::to_string(k) + "] names no trainable parameter");
        impl->clip.groups.push_back(std::move(group));
        impl->clip.bounds.push_back(config.per_layer[k].max_grad_norm);
        squared += config.per_layer[k].max_grad_norm * config.per_layer[k].max_grad_norm;
      }
      for (size_t p = 0; p < seen.size(); ++p) {
        if (seen[p] == 0) problems.push_back("trainable parameter '" + impl->names[p] + "' is in no perLayer group");
      }
      impl->noise_stddev = config.noise_multiplier == 0 ? 0 : config.noise_multiplier * std::sqrt(squared);
    }
  }
  ThrowProblems(problems);

  // One forward of two synthetic samples: a model that mixes or drops the batch dimension, or labels
  // that do not fit the loss, fail here rather than at the first step. Zeros of the dataset's dtypes
  // and per-sample shapes (valid embedding indices and class labels), never a record: the data's
  // values must not decide whether a job can be created, nor what its error says. The engine's
  // batch-layout probe runs on them too, so it never runs on a real batch.
  // A failure of the model's code here is public information too, so it carries the model's message.
  try {
    const Batch probe = SyntheticBatch(impl->data, 2);
    {
      at::NoGradGuard no_grad;
      impl->module.eval();
      PerSampleLoss(impl->Forward(probe.inputs), probe.labels, impl->loss);
    }
    if (config.is_private) {
      impl->module.train(true);
      impl->engine->Probe(probe.inputs);
    }
  } catch (...) {
    RethrowAsModelFailure(
        "The model fails on two synthetic samples (zeros of the data's per-sample shapes and dtypes)");
  }

  if (config.is_private) {
    double bound = config.max_grad_norm;
    if (!config.per_layer.empty()) {
      double squared = 0;
      for (const LayerBound& layer : config.per_layer) squared += layer.max_grad_norm * layer.max_grad_norm;
      bound = std::sqrt(squared);
    }
    const bool float_params = std::all_of(impl->params.begin(), impl->params.end(), [](const at::Tensor& p) {
      return p.scalar_type() == at::kFloat || p.scalar_type() == at::kDouble;
    });
    impl->sums_may_overflow =
        !(float_params && std::isfinite(bound) && bound * static_cast<double>(impl->data.samples) < 1e30);
  }

  impl->config = config;
  impl->optimizer = MakeOptimizer(config.optimizer, impl->params);
  impl->generator = MakeOsSeededGenerator();
  impl->sampling = std::make_unique<GaussianStream>();
  if (!config.is_private) impl->batches.emplace(impl->data.samples, config.batch_size);
  return std::unique_ptr<Trainer>(new Trainer(std::move(impl)));
}

StepResult Trainer::Step() {
  if (!impl_->config.fail_fast) return impl_->Step();
  try {
    return impl_->Step();
  } catch (...) {
    RethrowAsModelFailure("Step " + std::to_string(impl_->step + 1) + ": the model fails on synthetic samples");
  }
}

Evaluation Trainer::Evaluate(const HostData* data) {
  if (data == nullptr) return impl_->Evaluate(impl_->data);
  std::vector<std::string> problems;
  const Tensors tensors = WrapData(*data, /*need_labels=*/true, problems);
  ThrowProblems(problems);
  return impl_->Evaluate(tensors);
}

OutputTensor Trainer::Predict(const std::vector<HostTensor>& inputs) {
  HostData data;
  data.inputs = inputs;
  std::vector<std::string> problems;
  const Tensors tensors = WrapData(data, /*need_labels=*/false, problems);
  ThrowProblems(problems);
  at::NoGradGuard no_grad;
  impl_->module.eval();
  std::vector<at::Tensor> outputs;
  const int64_t chunk = impl_->EvalChunk();
  for (int64_t begin = 0; begin < tensors.samples; begin += chunk) {
    const at::Tensor indices = at::arange(begin, std::min(begin + chunk, tensors.samples), at::kLong);
    const at::Tensor output = impl_->Forward(impl_->Gather(tensors, indices).inputs);
    if (output.dim() == 0 || output.size(0) != indices.size(0)) {
      Refuse("The model output " + ShapeText(output.sizes()) + " does not have the batch's " +
             std::to_string(indices.size(0)) + " samples as its first dimension");
    }
    outputs.push_back(output);
  }
  const at::Tensor all = at::cat(outputs).contiguous();
  OutputTensor result;
  result.dtype = DtypeName(all.scalar_type());
  result.shape.assign(all.sizes().begin(), all.sizes().end());
  result.bytes.assign(static_cast<const char*>(all.data_ptr()), all.nbytes());
  return result;
}

std::string Trainer::State() {
  const Impl& impl = *impl_;
  torch::serialize::OutputArchive archive;
  archive.write("format", c10::IValue(kStateFormat));
  archive.write("step", c10::IValue(impl.step));
  archive.write("mode", c10::IValue(std::string(impl.config.is_private ? "private" : "non-private")));
  archive.write("optimizer_kind", c10::IValue(impl.config.optimizer.type));  // the key of format 1
  archive.write("parameter_names", c10::IValue(c10::List<std::string>(impl.names)));
  torch::serialize::OutputArchive parameters;
  for (size_t p = 0; p < impl.params.size(); ++p)
    parameters.write(std::to_string(p), impl.params[p].detach(), /*is_buffer=*/true);
  archive.write("parameters", parameters);
  torch::serialize::OutputArchive optimizer;
  impl.optimizer->save(optimizer);
  archive.write("optimizer", optimizer);
  std::ostringstream out;
  archive.save_to(out);
  return out.str();
}

void Trainer::Restore(std::string state) {
  Impl& impl = *impl_;
  // The state is a checkpoint this server wrote and sealed; it is still read as untrusted bytes
  // (bounded reads, every value checked against this trainer) before anything is replaced.
  torch::serialize::InputArchive archive;
  try {
    auto reader = std::make_shared<StateReader>(std::move(state));
    archive.load_from([reader](uint64_t pos, void* buf, size_t n) { return reader->Read(pos, buf, n); },
                      [reader]() { return reader->Size(); }, c10::Device(c10::kCPU));
  } catch (const std::bad_alloc&) {
    throw;
  } catch (...) {
    std::throw_with_nested(Error(ErrorCode::kInvalidArgument, "The trainer state cannot be read"));
  }
  auto read = [&](const char* key) {
    c10::IValue value;
    try {
      archive.read(key, value);
    } catch (...) {
      Refuse(std::string("The trainer state has no '") + key + "'");
    }
    return value;
  };
  const c10::IValue format = read("format");
  if (!format.isInt() || format.toInt() != kStateFormat) Refuse("The trainer state has an unknown format");
  const c10::IValue step = read("step");
  if (!step.isInt() || step.toInt() < 0) Refuse("The trainer state has an invalid step count");
  const c10::IValue mode = read("mode");
  const std::string expected_mode = impl.config.is_private ? "private" : "non-private";
  if (!mode.isString() || mode.toStringRef() != expected_mode)
    Refuse("The trainer state is not of a " + expected_mode + " trainer");
  const c10::IValue kind = read("optimizer_kind");
  if (!kind.isString() || kind.toStringRef() != impl.config.optimizer.type) {
    Refuse("The trainer state is of another optimizer than " + impl.config.optimizer.type);
  }
  const c10::IValue names = read("parameter_names");
  if (!names.isList() || names.toListRef().size() != impl.names.size()) Refuse("The trainer state is of another model");
  for (size_t p = 0; p < impl.names.size(); ++p) {
    const c10::IValue& name = names.toListRef()[p];
    if (!name.isString() || name.toStringRef() != impl.names[p]) Refuse("The trainer state is of another model");
  }

  std::vector<at::Tensor> values;
  try {
    torch::serialize::InputArchive parameters;
    archive.read("parameters", parameters);
    for (size_t p = 0; p < impl.params.size(); ++p) {
      at::Tensor value;
      parameters.read(std::to_string(p), value, /*is_buffer=*/true);
      values.push_back(value);
    }
  } catch (const Error&) {
    throw;
  } catch (...) {
    std::throw_with_nested(Error(ErrorCode::kInvalidArgument, "The trainer state's parameters cannot be read"));
  }
  for (size_t p = 0; p < impl.params.size(); ++p) {
    const at::Tensor& value = values[p];
    if (!value.defined() || value.sizes() != impl.params[p].sizes() ||
        value.scalar_type() != impl.params[p].scalar_type() || !AllFinite(value)) {
      Refuse("The trainer state's value of parameter '" + impl.names[p] + "' does not fit the model");
    }
  }

  std::unique_ptr<torch::optim::Optimizer> optimizer = MakeOptimizer(impl.config.optimizer, impl.params);
  try {
    torch::serialize::InputArchive saved;
    archive.read("optimizer", saved);
    optimizer->load(saved);
  } catch (const std::bad_alloc&) {
    throw;
  } catch (...) {
    std::throw_with_nested(Error(ErrorCode::kInvalidArgument, "The trainer state's optimizer state cannot be read"));
  }
  for (size_t p = 0; p < impl.params.size(); ++p) {
    const auto it = optimizer->state().find(ParamKey(impl.params[p]));
    if (it == optimizer->state().end()) continue;
    for (const at::Tensor* tensor : StateTensors(*it->second)) {
      if (tensor->defined() && (tensor->sizes() != impl.params[p].sizes() || !AllFinite(*tensor))) {
        Refuse("The trainer state's optimizer state of parameter '" + impl.names[p] + "' does not fit the model");
      }
    }
  }

  {
    at::NoGradGuard no_grad;
    for (size_t p = 0; p < impl.params.size(); ++p) impl.params[p].copy_(values[p]);
  }
  impl.optimizer = std::move(optimizer);
  impl.step = step.toInt();
  impl.generator = MakeOsSeededGenerator();
  impl.sampling = std::make_unique<GaussianStream>();
  impl.noise.Reseed();
  if (impl.batches) impl.batches->Reset();
}

std::string Trainer::ExportModel() {
  impl_->module.train(impl_->original_training);
  std::ostringstream out;
  impl_->module.save(out);
  return WithoutDebugInfo(out.str());
}

int64_t Trainer::steps() const { return impl_->step; }
const std::vector<std::string>& Trainer::trainable_parameters() const { return impl_->names; }
int64_t Trainer::dataset_size() const { return impl_->data.samples; }
std::vector<ParameterRule> Trainer::gradient_plan() const { return impl_->engine->Plan(); }

}  // namespace bastion::core::dp
