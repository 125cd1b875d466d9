// Registers the addon's exports; each runs under binding::Guard. Per-environment instance data
// (Napi::Addon) keeps the addon usable from worker_threads and freed with each environment.
#include <napi.h>

#include "binding/exports.h"
#include "binding/guard.h"
#include "binding/trainer.h"
#include "core/runtime.h"

namespace bastion::binding {

class Addon : public Napi::Addon<Addon> {
 public:
  Addon(Napi::Env env, Napi::Object exports) {
    core::KeepFreedMemory();
    DefineAddon(exports, {
                             InstanceMethod<&Addon::Export<Version>>("version", napi_enumerable),
                             InstanceMethod<&Addon::Export<SetThreads>>("setThreads", napi_enumerable),
                             InstanceMethod<&Addon::Export<NoiseKeystream>>("noiseKeystream", napi_enumerable),
                             InstanceMethod<&Addon::Export<InspectModel>>("inspectModel", napi_enumerable),
                             InstanceMethod<&Addon::Export<ExtractTensors>>("extractTensors", napi_enumerable),
                             // Per-sample gradient engine (binding/engine.cc).
                             InstanceMethod<&Addon::Export<GradientPlan>>("gradientPlan", napi_enumerable),
                             InstanceMethod<&Addon::Export<PerSampleGradients>>("perSampleGradients", napi_enumerable),
                             InstanceMethod<&Addon::Export<ClippedGradientSum>>("clippedGradientSum", napi_enumerable),
                             // End of per-sample gradient engine.
                             InstanceValue("Trainer", Trainer::Define(env), napi_enumerable),
                         });
  }

 private:
  template <Handler handler>
  Napi::Value Export(const Napi::CallbackInfo& info) {
    return Guard(info, handler);
  }
};

}  // namespace bastion::binding

using bastion::binding::Addon;
NODE_API_ADDON(Addon)
