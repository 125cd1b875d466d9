// The JS class Trainer (a Napi::ObjectWrap over core::dp::Trainer). One instance per training job,
// used from one pool worker thread; every method runs under the error guard.
//
//   new Trainer(model: Uint8Array, data: { inputs: Tensor[], labels: Tensor }, config)
//     Tensor = { dtype: 'F32' | 'F64' | 'I64' | ..., shape: number[], data: TypedArray } (binding/args.h)
//     config = { mode, loss: { kind, labelSmoothing? }, optimizer: { type, learningRate, ... }, ... }: the
//       API's names (src/native.ts's TrainerConfig)
//   step() -> { step, samples, lossSum, clippedLossSum (with config.lossBound), durationMs }
//   evaluate(data?) -> { samples, meanLoss, accuracy | null }
//   predict(inputs: Tensor[]) -> { dtype, shape, data: Buffer }
//   state() -> Buffer;  restore(state: Uint8Array) -> undefined;  exportModel() -> Buffer
//   info() -> { steps, samples, trainableParameters }
#ifndef BASTION_BINDING_TRAINER_H_
#define BASTION_BINDING_TRAINER_H_

#include <memory>
#include <string>
#include <vector>

#include <napi.h>

#include "core/dp/trainer.h"

namespace bastion::binding {

class Trainer : public Napi::ObjectWrap<Trainer> {
 public:
  // The class for this environment's exports.
  static Napi::Function Define(Napi::Env env);

  explicit Trainer(const Napi::CallbackInfo& info);
  ~Trainer() override;

 private:
  // A training tensor's JS view, held so its memory outlives the core trainer that reads it.
  struct Borrowed {
    std::string name;
    Napi::Reference<Napi::TypedArray> array;
    const void* data;
    size_t byte_length;
  };

  // Tensors are borrowed (binding/args.h's ReadTensor), their views added to `borrowed`: borrowed_ for
  // the training data, a list of the call's own for the data of one call.
  static core::dp::HostTensor ReadTensor(const Napi::Value& value, const std::string& name,
                                         std::vector<Borrowed>& borrowed);
  static core::dp::HostData ReadData(const Napi::Value& value, std::vector<Borrowed>& borrowed);
  static core::dp::TrainerConfig ReadConfig(const Napi::Value& value);
  // Throws when a borrowed buffer no longer is where it was read (before core reads it).
  void CheckBorrowed(const std::vector<Borrowed>& borrowed);

  Napi::Value Step(const Napi::CallbackInfo& info);
  Napi::Value Evaluate(const Napi::CallbackInfo& info);
  Napi::Value Predict(const Napi::CallbackInfo& info);
  Napi::Value State(const Napi::CallbackInfo& info);
  Napi::Value Restore(const Napi::CallbackInfo& info);
  Napi::Value ExportModel(const Napi::CallbackInfo& info);
  Napi::Value Info(const Napi::CallbackInfo& info);

  // Declared before trainer_ so that the trainer (which reads these buffers) is destroyed first.
  std::vector<Borrowed> borrowed_;
  std::unique_ptr<core::dp::Trainer> trainer_;
  bool reports_clipped_loss_ = false;  // config.lossBound was set: step() returns clippedLossSum
};

}  // namespace bastion::binding

#endif  // BASTION_BINDING_TRAINER_H_
