// What a model's forward may do, decided in one place: the allowlist of node kinds of the inlined
// forward graph (each with why it is safe), the operators refused for a named reason, and the
// model-level rules (state mutation, BatchNorm in training mode, frozen weights, no forward). It
// protects the invariant that a model accepted at upload can run inside the training workers
// without touching files, the network, the server's output or memory it does not own, and without
// carrying anything computed from the data out of training except through its (noised) parameters.
// Pure: it reads an inspection (native.ts ModelInspection, computed in the sandbox) and nothing else.
//
// How the allowlist was built: every node kind that the reference models of
// test/data/torchscript (PyTorch 1.13 and 2.6 writers, scripted and traced: MNIST CNN, MLP,
// text classifier, transformer encoder, GroupNorm + Conv1d) use in their inlined forward, plus the
// layers, activations, shape and arithmetic operators a PyTorch user commonly reaches (the nn
// modules' TorchScript code calls them). An operator not listed is refused until someone reads what
// it does and adds a row; an unknown node kind is never accepted by default.
//
// Why "only inside a branch" for a few operators: nn modules raise (prim::RaiseException) and warn
// (aten::warn) only in branches that check their input, and the scripted nn.Transformer* code calls
// fused inference kernels (no derivative) only on a fast path it takes when autograd is off; all of
// them sit in prim::If blocks of models that train fine. The same operator on the top-level block
// runs on every call: a forward that always raises cannot train, and a fused kernel there (a model
// traced under no_grad) fails at the first backward. This is a usability rule, not a security
// boundary: a crafted model can always reach a branch. The trainer therefore must not relay the
// text of exceptions or warnings raised in forward (it could be built from the data) to anyone.
//
// Why "only in inference" for the nested-tensor conversions: nn.TransformerEncoder converts its
// input to a nested tensor only on its fast path, which needs eval mode and autograd off. The
// inspection counts the uses left once the branches that cannot run in training (training mode,
// autograd on, trainable parameters: the facts the per-sample gradient engine resolves them with,
// addon core/dp/branch_folding.h) are removed (OperatorUse.inTraining); there must be none.
import type { ModelInspection, OperatorUse } from '../native.js';
import { acceptedRanks, analyseBatchIndependence, type BatchAnalysis, type BatchProblem, TENSOR_FLAG_OPERATORS } from './batch-analysis.js';

/** Where an allowed operator may appear. */
export type OperatorPlacement = 'anywhere' | 'branch' | 'inference';

export interface AllowedOperator {
  /** Why the operator is safe in a forward that trains under DP. */
  readonly why: string;
  /**
   * 'branch': only inside prim::If/prim::Loop blocks; 'inference': only in branches that cannot run
   * in DP training (see the module comment).
   */
  readonly placement: OperatorPlacement;
}

function group(why: string, kinds: readonly string[], placement: OperatorPlacement = 'anywhere'): [string, AllowedOperator][] {
  return kinds.map((kind) => [kind, { why, placement }]);
}

/**
 * The allowlist: node kind → why it is safe. In-place variants are listed where PyTorch code uses
 * them; their writes to module state are refused by the mutation rule, not here.
 */
export const allowedOperators: Readonly<Record<string, AllowedOperator>> = Object.freeze(
  Object.fromEntries([
    // --- IR structure -----------------------------------------------------------------------
    ...group('IR structure: constants, attribute reads and tuple/list plumbing; no computation on data', [
      'prim::Constant',
      'prim::GetAttr',
      'prim::ListConstruct',
      'prim::ListUnpack',
      'prim::TupleConstruct',
      'prim::TupleUnpack',
      'prim::TupleIndex',
      'prim::DictConstruct',
      'prim::ConstantChunk',
      'prim::NumToTensor',
      'prim::unchecked_cast',
      'prim::unchecked_unwrap_optional',
      'prim::Uninitialized',
      'prim::tolist',
      'prim::min',
      'prim::max',
      'prim::abs',
    ]),
    ...group('control flow: its blocks are analysed like the rest of the graph (trip counts are bounded only by the training timeout)', [
      'prim::If',
      'prim::Loop',
    ]),
    ...group(
      'assigns an attribute: harmless on objects created in forward (which need prim::CreateObject, not allowed); writes to module ' +
        'state are refused by the mutation rule',
      ['prim::SetAttr'],
    ),
    ...group('reads tensor metadata (device, dtype, flags); nothing leaves the process', [
      ...TENSOR_FLAG_OPERATORS,
      'prim::type',
      'aten::dim',
      'aten::size',
      'aten::numel',
      'aten::stride',
      'aten::is_contiguous',
    ]),
    // --- Python values (ints, floats, bools, strings, lists, dicts) ---------------------------
    ...group(
      'arithmetic, comparison and conversion of Python scalars and tensors; pure (the batch analysis refuses converting values ' +
        'computed from the samples)',
      [
        'aten::Int',
        'aten::Float',
        'aten::Bool',
        'aten::ScalarImplicit',
        'aten::IntImplicit',
        'aten::FloatImplicit',
        'aten::__is__',
        'aten::__isnot__',
        'aten::__not__',
        'aten::__and__',
        'aten::__or__',
        'aten::__xor__',
        'aten::__round_to_zero_floordiv',
        'aten::floordiv',
        'aten::divmod',
        'aten::item',
        'aten::is_nonzero',
      ],
    ),
    ...group('list, dict and string operations on values local to forward (error-message formatting, shape bookkeeping); pure', [
      'aten::__getitem__',
      'aten::__contains__',
      'aten::__range_length',
      'aten::__derive_index',
      'aten::len',
      'aten::list',
      'aten::append',
      'aten::extend',
      'aten::insert',
      'aten::pop',
      'aten::_set_item',
      'aten::dict',
      'aten::keys',
      'aten::values',
      'aten::items',
      'aten::format',
      'aten::str',
      'aten::find',
    ]),
    // --- Layers -------------------------------------------------------------------------------
    ...group('layer with weights (nn.Linear, nn.Bilinear); its weights are parameters the DP trainer sees', [
      'aten::linear',
      'aten::bilinear',
    ]),
    ...group('convolution layer (nn.Conv*, traced as aten::_convolution); weights are parameters', [
      'aten::conv1d',
      'aten::conv2d',
      'aten::conv3d',
      'aten::conv_transpose1d',
      'aten::conv_transpose2d',
      'aten::conv_transpose3d',
      'aten::_convolution',
      'aten::convolution',
    ]),
    ...group('embedding lookup (nn.Embedding); weight is a parameter', ['aten::embedding']),
    ...group('per-sample normalisation (nn.LayerNorm, nn.GroupNorm): no statistics across samples', [
      'aten::layer_norm',
      'aten::native_layer_norm',
      'aten::group_norm',
    ]),
    ...group(
      'normalisation with running statistics: allowed in eval form only; the BatchNorm rule refuses batch statistics (training mode)',
      ['aten::batch_norm', 'aten::instance_norm'],
    ),
    ...group('dropout: per-sample random masks from the process RNG; no side effects', [
      'aten::dropout',
      'aten::dropout_',
      'aten::feature_dropout',
      'aten::alpha_dropout',
      'aten::feature_alpha_dropout',
      'aten::native_dropout',
    ]),
    ...group(
      "recurrent layers (nn.LSTM, nn.GRU, nn.RNN): a recurrence along each sample's time dimension; the weights are parameters, and " +
        'the batch rule keeps samples apart',
      ['aten::lstm', 'aten::gru', 'aten::rnn_tanh', 'aten::rnn_relu'],
    ),
    ...group('attention as matmul/softmax (PyTorch 2.x writes it; the addon registers a differentiable kernel for libtorch 1.13)', [
      'aten::scaled_dot_product_attention',
    ]),
    ...group(
      'fused inference kernel without a derivative: nn.Transformer*/MultiheadAttention call it only on their fast path, taken when ' +
        'autograd is off, never in training',
      [
        'aten::_transformer_encoder_layer_fwd',
        'aten::_native_multi_head_attention',
        'aten::_transformer_decoder_only_layer_fwd',
        'aten::_native_decoder_only_multi_head_attention',
      ],
      'branch',
    ),
    ...group(
      'nested-tensor conversion: nn.TransformerEncoder calls it only on its inference fast path (eval mode, autograd off), which DP ' +
        "training's facts rule out; batch-analysis.ts checks it keeps each sample's rows",
      ['aten::_nested_tensor_from_mask', 'aten::_nested_tensor_from_mask_left_aligned', 'aten::to_padded_tensor'],
      'inference',
    ),
    ...group('pooling and padding; pure functions of their input', [
      'aten::max_pool1d',
      'aten::max_pool2d',
      'aten::max_pool3d',
      'aten::max_pool1d_with_indices',
      'aten::max_pool2d_with_indices',
      'aten::max_pool3d_with_indices',
      'aten::avg_pool1d',
      'aten::avg_pool2d',
      'aten::avg_pool3d',
      'aten::adaptive_avg_pool1d',
      'aten::adaptive_avg_pool2d',
      'aten::adaptive_avg_pool3d',
      'aten::adaptive_max_pool1d',
      'aten::adaptive_max_pool2d',
      'aten::pad',
      'aten::constant_pad_nd',
      'aten::reflection_pad1d',
      'aten::reflection_pad2d',
      'aten::replication_pad1d',
      'aten::replication_pad2d',
      'aten::upsample_nearest1d',
      'aten::upsample_nearest2d',
      'aten::upsample_bilinear2d',
      'aten::pixel_shuffle',
    ]),
    // --- Activations --------------------------------------------------------------------------
    ...group('activation function; pure', [
      'aten::relu',
      'aten::relu_',
      'aten::relu6',
      'aten::leaky_relu',
      'aten::leaky_relu_',
      'aten::elu',
      'aten::elu_',
      'aten::selu',
      'aten::selu_',
      'aten::celu',
      'aten::celu_',
      'aten::gelu',
      'aten::silu',
      'aten::silu_',
      'aten::mish',
      'aten::hardtanh',
      'aten::hardtanh_',
      'aten::hardsigmoid',
      'aten::hardsigmoid_',
      'aten::hardswish',
      'aten::hardswish_',
      'aten::sigmoid',
      'aten::sigmoid_',
      'aten::tanh',
      'aten::tanh_',
      'aten::softplus',
      'aten::log_sigmoid',
      'aten::threshold',
      'aten::threshold_',
      'aten::prelu',
      'aten::glu',
      'aten::hardshrink',
      'aten::softshrink',
      'aten::softmax',
      'aten::log_softmax',
      'aten::_masked_softmax',
    ]),
    // --- Arithmetic ---------------------------------------------------------------------------
    ...group('elementwise arithmetic and comparison on tensors; pure (in-place forms write only their first argument)', [
      'aten::add',
      'aten::add_',
      'aten::sub',
      'aten::sub_',
      'aten::rsub',
      'aten::mul',
      'aten::mul_',
      'aten::div',
      'aten::div_',
      'aten::true_divide',
      'aten::floor_divide',
      'aten::remainder',
      'aten::fmod',
      'aten::neg',
      'aten::abs',
      'aten::sign',
      'aten::pow',
      'aten::square',
      'aten::sqrt',
      'aten::rsqrt',
      'aten::reciprocal',
      'aten::exp',
      'aten::exp2',
      'aten::expm1',
      'aten::log',
      'aten::log2',
      'aten::log10',
      'aten::log1p',
      'aten::sin',
      'aten::cos',
      'aten::tan',
      'aten::sinh',
      'aten::cosh',
      'aten::asin',
      'aten::acos',
      'aten::atan',
      'aten::atan2',
      'aten::erf',
      'aten::floor',
      'aten::ceil',
      'aten::round',
      'aten::trunc',
      'aten::frac',
      'aten::clamp',
      'aten::clamp_',
      'aten::clamp_min',
      'aten::clamp_max',
      'aten::clip',
      'aten::minimum',
      'aten::maximum',
      'aten::fmin',
      'aten::fmax',
      'aten::lerp',
      'aten::addcmul',
      'aten::addcdiv',
      'aten::where',
      'aten::masked_fill',
      'aten::masked_fill_',
      'aten::nan_to_num',
      'aten::eq',
      'aten::ne',
      'aten::lt',
      'aten::le',
      'aten::gt',
      'aten::ge',
      'aten::isnan',
      'aten::isinf',
      'aten::isfinite',
      'aten::logical_and',
      'aten::logical_or',
      'aten::logical_not',
      'aten::logical_xor',
      'aten::bitwise_not',
      'aten::bitwise_and',
    ]),
    ...group('matrix products; pure', [
      'aten::matmul',
      'aten::mm',
      'aten::bmm',
      'aten::addmm',
      'aten::baddbmm',
      'aten::addbmm',
      'aten::mv',
      'aten::addmv',
      'aten::dot',
      'aten::outer',
      'aten::einsum',
      'aten::tensordot',
    ]),
    ...group('reductions and norms; pure', [
      'aten::sum',
      'aten::mean',
      'aten::prod',
      'aten::std',
      'aten::var',
      'aten::std_mean',
      'aten::var_mean',
      'aten::logsumexp',
      'aten::max',
      'aten::min',
      'aten::amax',
      'aten::amin',
      'aten::argmax',
      'aten::argmin',
      'aten::all',
      'aten::any',
      'aten::cumsum',
      'aten::cumprod',
      'aten::norm',
      'aten::linalg_vector_norm',
      'aten::frobenius_norm',
      'aten::cosine_similarity',
      'aten::pairwise_distance',
      'aten::cdist',
      'aten::topk',
      'aten::sort',
      'aten::argsort',
    ]),
    // --- Shapes and tensor creation -----------------------------------------------------------
    ...group('views, reshapes, joins and indexing; pure (outputs alias inputs; writes through them are caught by the mutation rule)', [
      'aten::view',
      'aten::view_as',
      'aten::reshape',
      'aten::reshape_as',
      'aten::flatten',
      'aten::unflatten',
      'aten::squeeze',
      'aten::unsqueeze',
      'aten::permute',
      'aten::transpose',
      'aten::t',
      'aten::movedim',
      'aten::swapaxes',
      'aten::expand',
      'aten::expand_as',
      'aten::repeat',
      'aten::repeat_interleave',
      'aten::tile',
      'aten::flip',
      'aten::roll',
      'aten::contiguous',
      'aten::clone',
      'aten::detach',
      'aten::to',
      'aten::type_as',
      'aten::cat',
      'aten::concat',
      'aten::stack',
      'aten::hstack',
      'aten::vstack',
      'aten::split',
      'aten::split_with_sizes',
      'aten::chunk',
      'aten::unbind',
      'aten::narrow',
      'aten::select',
      'aten::slice',
      'aten::index',
      'aten::index_select',
      'aten::gather',
      'aten::masked_select',
      'aten::tril',
      'aten::triu',
      'aten::diagonal',
      'aten::diag',
      'aten::one_hot',
      'aten::scatter',
      'aten::scatter_add',
      'aten::index_add',
      'aten::index_fill',
      'aten::index_put_',
      'aten::copy_',
      'aten::fill_',
      'aten::zero_',
    ]),
    ...group('creates a tensor filled with known values; memory use is bounded by the process limits', [
      'aten::zeros',
      'aten::zeros_like',
      'aten::ones',
      'aten::ones_like',
      'aten::full',
      'aten::full_like',
      'aten::new_zeros',
      'aten::new_ones',
      'aten::new_full',
      'aten::arange',
      'aten::linspace',
      'aten::eye',
      'aten::tensor',
      'aten::scalar_tensor',
      'aten::as_tensor',
    ]),
    ...group('random numbers from the process RNG (dropout-like noise); no side effects', [
      'aten::rand',
      'aten::randn',
      'aten::rand_like',
      'aten::randn_like',
      'aten::bernoulli',
      'aten::bernoulli_',
    ]),
    // --- Errors and warnings: only inside branches (see the module comment) --------------------
    ...group(
      'raises an error: nn modules do it only in branches that reject invalid input; the trainer does not relay its text',
      ['prim::RaiseException'],
      'branch',
    ),
    ...group(
      'emits a warning: nn modules do it only in branches (deprecated argument types); the trainer discards warning text',
      ['aten::warn'],
      'branch',
    ),
  ]),
);

/** Operators refused with a specific reason (none of them is on the allowlist). */
export const refusedOperators: Readonly<Record<string, string>> = Object.freeze({
  'prim::Print': "writes to the server process's standard output, where it could leak training data",
  'aten::warn': "writes a warning to the server's log on every call, where it could leak training data",
  'prim::RaiseException': 'raises on every call, so the model can never train',
  'aten::from_file': 'reads a file of the server into a tensor',
  'aten::save': 'writes a file on the server',
  'prim::CallMethod': 'calls a method the analysis could not inline (an interface or a dynamic call), so what it runs is unknown',
  'prim::CallFunction': 'calls a function the analysis could not inline, so what it runs is unknown',
  'prim::fork': 'starts asynchronous work the analysis cannot follow',
  'aten::wait': 'waits on asynchronous work the analysis cannot follow',
  'prim::rpc_async': 'makes a remote procedure call',
  'prim::rpc_sync': 'makes a remote procedure call',
  'prim::rpc_remote': 'makes a remote procedure call',
  'prim::TimePoint': 'reads a clock (a timing side channel)',
  'prim::AddStatValue': "writes to the process's statistics",
  'prim::PythonOp': 'calls Python, which the server does not have',
  'prim::id': 'reveals memory addresses of the server process',
  'aten::empty': "returns uninitialised memory, which may still hold another training's data",
  'aten::empty_like': "returns uninitialised memory, which may still hold another training's data",
  'aten::new_empty': "returns uninitialised memory, which may still hold another training's data",
  'aten::empty_strided': "returns uninitialised memory, which may still hold another training's data",
  'aten::new_empty_strided': "returns uninitialised memory, which may still hold another training's data",
  'aten::resize_': "grows a tensor into uninitialised memory, which may still hold another training's data",
  'aten::set_': 'points a tensor at other storage',
  'aten::as_strided': "builds an arbitrary view over a tensor's storage",
  'aten::_transformer_encoder_layer_fwd':
    'is an inference-only fused kernel without a derivative, run on every call (a model traced under torch.no_grad()?): training ' +
    'fails at the first backward',
  'aten::_native_multi_head_attention':
    'is an inference-only fused kernel without a derivative, run on every call (a model traced under torch.no_grad()?): training ' +
    'fails at the first backward',
  'aten::_transformer_decoder_only_layer_fwd':
    'is an inference-only fused kernel without a derivative, run on every call: training fails at the first backward',
  'aten::_native_decoder_only_multi_head_attention':
    'is an inference-only fused kernel without a derivative, run on every call: training fails at the first backward',
  'aten::_nested_tensor_from_mask':
    "makes a nested tensor, which DP training's per-sample gradients do not support, on a path that runs in training; it may appear " +
    'only on an inference path (eval mode or autograd off)',
  'aten::_nested_tensor_from_mask_left_aligned':
    'inspects a nested-tensor padding mask on a path that runs in training; it may appear only on an inference path (eval mode or ' +
    'autograd off)',
  'aten::to_padded_tensor':
    "converts a nested tensor, which DP training's per-sample gradients do not support, on a path that runs in training; it may " +
    'appear only on an inference path (eval mode or autograd off)',
});

/** Namespaces and prefixes refused with a reason; a node kind matching one is never allowed. */
export const refusedPrefixes: readonly { prefix: string; why: string }[] = Object.freeze([
  { prefix: 'profiler::', why: 'drives the profiler, which records timings and writes trace files' },
  { prefix: '_test::', why: 'is a test operator, not meant to run on a server' },
  { prefix: 'aten::_test_', why: 'is a test operator, not meant to run on a server' },
  { prefix: 'c10d::', why: 'is a collective-communication operator (processes and network)' },
  { prefix: 'cuda::', why: 'manages CUDA devices and streams, which the server does not use' },
  { prefix: 'quantized::', why: 'runs a quantized kernel on packed parameters the trainer cannot train' },
  { prefix: 'prepacked::', why: 'runs a kernel on prepacked parameters the trainer cannot train' },
]);

/**
 * Largest number of elements all tensor constants of forward may hold together. A traced model
 * bakes a few scalars (the reference transformer: 2 one-element constants); weights frozen into
 * the graph (torch.jit.freeze) hold far more, and would be used but never trained.
 */
export const MAX_TENSOR_CONSTANT_ELEMENTS = 1000;

export const PolicyRule = {
  /** The module has no forward method. */
  NO_FORWARD: 'no-forward',
  /** A node kind that is not on the allowlist. */
  OPERATOR_NOT_ALLOWED: 'operator-not-allowed',
  /** A node kind refused for a specific reason (refusedOperators, refusedPrefixes, branch-only placement). */
  OPERATOR_REFUSED: 'operator-refused',
  /** forward writes to a parameter, buffer or attribute of the module. */
  STATE_MUTATION: 'state-mutation',
  /** BatchNorm (or InstanceNorm with running statistics) in training mode. */
  BATCH_NORM_TRAINING: 'batch-norm-training',
  /** Weights frozen into the graph as tensor constants. */
  FROZEN_WEIGHTS: 'frozen-weights',
  /** No parameter requires a gradient. */
  NO_TRAINABLE_PARAMETERS: 'no-trainable-parameters',
  /** A trainable parameter that is not a dense float32 tensor with contiguous strides. */
  PARAMETER_LAYOUT: 'parameter-layout',
  /** An operator combines the samples of a batch, or the analysis cannot show it does not (batch-analysis.ts). */
  BATCH_MIXING: 'batch-mixing',
  /** Values of the samples, or their number, steer control flow, reach Python numbers or shape tensors. */
  DATA_CONTROL_FLOW: 'data-control-flow',
} as const;
export type PolicyRule = (typeof PolicyRule)[keyof typeof PolicyRule];

export interface PolicyProblem {
  rule: PolicyRule;
  /** The node kind the problem is about, e.g. "prim::Print". */
  operator?: string;
  /** The parameter, buffer or attribute the problem is about, e.g. "bn.running_mean". */
  attribute?: string;
  /** Where in the archive's serialized source ("file:line"); empty when unknown. */
  locations: string[];
  /** One sentence for the uploader: what, where, why, and what to do when there is a fix. */
  message: string;
}

export interface PolicyDecision {
  /** Every reason the model may not be trained; empty when it is accepted. */
  problems: PolicyProblem[];
  /**
   * The ranks of the forward's inputs (the sample dimension included; comma-separated when forward
   * takes several) at which the batch-independence analysis found no problem: trainings and
   * evaluations are allowed only on datasets whose inputs have one of these.
   */
  inputRanks: string[];
}

/**
 * Every reason the model may not be trained, in a fixed order (no forward; operators sorted by
 * kind; mutations by attribute; BatchNorm; frozen weights; no trainable parameters; batch mixing and
 * data-dependent control flow). Empty when the model is accepted.
 */
export function checkModelPolicy(inspection: ModelInspection): PolicyProblem[] {
  return decideModelPolicy(inspection).problems;
}

/**
 * The policy decision and the input ranks the model may be trained at, from the inspection and its
 * batch analysis (computed from forward's graph when not given). Batch problems are reported
 * for the input rank with the fewest of them (the rank the uploader most likely meant); the model is
 * refused when no rank is free of them.
 */
export function decideModelPolicy(inspection: ModelInspection, batchAnalysis?: BatchAnalysis): PolicyDecision {
  const problems = checkStaticPolicy(inspection);
  const forward = inspection.forward;
  if (!forward) return { problems, inputRanks: [] };
  // The sandbox runs the analysis beside the inspection (off the event loop); elsewhere it runs here.
  const analysis = batchAnalysis ?? analyseBatchIndependence(forward.graph);
  const inputRanks = acceptedRanks(analysis);
  if (inputRanks.length === 0) {
    // The fewest problems; among equals, not rank 1 (a sample that is a single number is rare, and a
    // layer then reads the batch as its features), then the lowest ranks.
    const cost = ([key, found]: [string, unknown[]]) => [
      found.length,
      key.split(',').includes('1') ? 1 : 0,
      key.split(',').reduce((n, r) => n + Number(r), 0),
    ];
    const [ranks, batchProblems] = Object.entries(analysis.ranks).reduce((best, entry) => {
      const [a, b] = [cost(entry), cost(best)];
      return a[0]! < b[0]! || (a[0] === b[0] && (a[1]! < b[1]! || (a[1] === b[1] && a[2]! < b[2]!))) ? entry : best;
    });
    problems.push(...batchProblems.map((problem) => toPolicyProblem(problem, ranks)));
  }
  return { problems, inputRanks };
}

function toPolicyProblem(problem: BatchProblem, ranks: string): PolicyProblem {
  const rule = problem.rule === 'batch-mixing' ? PolicyRule.BATCH_MIXING : PolicyRule.DATA_CONTROL_FLOW;
  const where = ranks.includes(',') ? `inputs of ranks ${ranks}` : `an input of rank ${ranks}`;
  return {
    rule,
    operator: problem.operator,
    locations: problem.location ? [problem.location] : [],
    message: `${problem.message} (analysed with ${where}, the sample dimension included)`,
  };
}

function checkStaticPolicy(inspection: ModelInspection): PolicyProblem[] {
  const forward = inspection.forward;
  if (!forward) {
    return [{ rule: PolicyRule.NO_FORWARD, locations: [], message: 'The module has no forward method, so there is nothing to train' }];
  }
  const problems: PolicyProblem[] = [];
  const operators = [...forward.operators].sort((a, b) => (a.kind < b.kind ? -1 : a.kind > b.kind ? 1 : 0));
  for (const use of operators) {
    const problem = checkOperator(use);
    if (problem) problems.push(problem);
  }
  problems.push(...checkMutations(inspection));
  if (forward.batchNormTraining) {
    const norms = operators.filter((use) => batchNormKinds.has(use.kind));
    problems.push({
      rule: PolicyRule.BATCH_NORM_TRAINING,
      ...(norms.length > 0 ? { operator: norms.map((use) => use.kind).join(', ') } : {}),
      locations: norms.flatMap((use) => use.locations).slice(0, 3),
      message:
        `BatchNorm (or InstanceNorm with running statistics) runs in training mode${at(norms.flatMap((use) => use.locations))}: ` +
        'it mixes the samples of a batch, so ' +
        'per-sample gradients do not exist, and it writes batch statistics into buffers without noise; use GroupNorm or ' +
        'LayerNorm (or a model traced in eval mode)',
    });
  }
  const constants = forward.tensorConstants;
  if (constants.elements > MAX_TENSOR_CONSTANT_ELEMENTS) {
    problems.push({
      rule: PolicyRule.FROZEN_WEIGHTS,
      operator: 'prim::Constant',
      locations: [], // the inspection locates constants of every type, not the tensor ones
      message:
        `forward holds ${constants.count} tensor constants with ${constants.elements} elements (more than ` +
        `${MAX_TENSOR_CONSTANT_ELEMENTS}): weights frozen into the graph (torch.jit.freeze?) are never trained; ` +
        'upload the model before freezing, and register fixed tensors as buffers',
    });
  }
  for (const parameter of inspection.parameters.filter((p) => p.requiresGrad)) {
    const wrong =
      parameter.dtype !== 'F32' ? `is ${parameter.dtype}` : !parameter.contiguous ? 'has zero, overlapping or permuted strides' : null;
    if (wrong) {
      problems.push({
        rule: PolicyRule.PARAMETER_LAYOUT,
        attribute: parameter.name,
        locations: [],
        message:
          `The parameter ${parameter.name} ${wrong}: the DP trainer trains dense F32 (float32) parameters with contiguous ` +
          `strides (model.float(), and save parameters made from contiguous tensors)`,
      });
    }
  }
  if (!inspection.parameters.some((parameter) => parameter.requiresGrad)) {
    const frozen = constants.count > 0 ? ` (its forward holds ${constants.count} tensor constants: a frozen model?)` : '';
    problems.push({
      rule: PolicyRule.NO_TRAINABLE_PARAMETERS,
      locations: [],
      message: `The model has no trainable parameters${frozen}; upload it before torch.jit.freeze`,
    });
  }
  return problems;
}

const batchNormKinds = new Set(['aten::batch_norm', 'aten::_batch_norm_impl_index', 'aten::native_batch_norm', 'aten::instance_norm']);

function checkOperator(use: OperatorUse): PolicyProblem | undefined {
  const allowed = Object.hasOwn(allowedOperators, use.kind) ? allowedOperators[use.kind] : undefined;
  const where = at(use.locations);
  if (allowed) {
    if (allowed.placement === 'anywhere') return undefined;
    const inference = allowed.placement === 'inference';
    const outside = inference ? use.inTraining : use.unconditional;
    if (outside === 0) return undefined;
    const why = refusedOperators[use.kind] ?? 'may appear only inside a conditional block';
    const what = inference ? 'on a path that runs in training (training mode, autograd on)' : 'outside any branch';
    return refuse(use, `${use.kind} ${why} (${outside} of ${use.count} ${what}${where ? `; ${where.trim()}` : ''})`);
  }
  const reason = Object.hasOwn(refusedOperators, use.kind)
    ? refusedOperators[use.kind]
    : refusedPrefixes.find((entry) => use.kind.startsWith(entry.prefix))?.why;
  if (reason) return refuse(use, `${use.kind} ${reason}${where}`);
  return {
    rule: PolicyRule.OPERATOR_NOT_ALLOWED,
    operator: use.kind,
    locations: use.locations,
    message: `${use.kind} is not on the allowlist of operators a model may use${where}`,
  };
}

function refuse(use: OperatorUse, message: string): PolicyProblem {
  return { rule: PolicyRule.OPERATOR_REFUSED, operator: use.kind, locations: use.locations, message };
}

/** One problem per attribute written, naming what it is and the operators that write it. */
function checkMutations(inspection: ModelInspection): PolicyProblem[] {
  const byAttribute = new Map<string, { kinds: Set<string>; locations: string[] }>();
  for (const mutation of inspection.forward?.mutations ?? []) {
    let entry = byAttribute.get(mutation.attribute);
    if (!entry) {
      entry = { kinds: new Set(), locations: [] };
      byAttribute.set(mutation.attribute, entry);
    }
    entry.kinds.add(mutation.kind);
    if (mutation.location && !entry.locations.includes(mutation.location) && entry.locations.length < 3) {
      entry.locations.push(mutation.location);
    }
  }
  const parameters = new Set(inspection.parameters.map((p) => p.name));
  const buffers = new Set(inspection.buffers.map((b) => b.name));
  return [...byAttribute.keys()].sort().map((attribute) => {
    const { kinds, locations } = byAttribute.get(attribute)!;
    const what = parameters.has(attribute) ? 'parameter' : buffers.has(attribute) ? 'buffer' : 'attribute';
    return {
      rule: PolicyRule.STATE_MUTATION,
      operator: [...kinds].join(', '),
      attribute,
      locations,
      message:
        `forward writes to the ${what} ${attribute} (${[...kinds].join(', ')})${at(locations)}: a trained model may carry ` +
        'what it learned from the data only in its parameters, through the DP optimizer',
    };
  });
}

function at(locations: readonly string[]): string {
  return locations.length > 0 ? ` at ${locations.slice(0, 3).join(', ')}` : '';
}
