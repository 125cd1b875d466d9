// The exported functions, each called through Guard (module.cc registers them).
#ifndef BASTION_BINDING_EXPORTS_H_
#define BASTION_BINDING_EXPORTS_H_

#include <napi.h>

namespace bastion::binding {

// version() -> { torch, cxx11Abi, intraOpThreads, interopThreads, blas, parallelBackend }
Napi::Value Version(const Napi::CallbackInfo& info);

// setThreads(intraOpThreads: integer 1..1024) -> undefined
Napi::Value SetThreads(const Napi::CallbackInfo& info);

// noiseKeystream(key: 16 bytes, nonce: 16 bytes, bytes: multiple of 128) -> Buffer | null: the AEGIS
// keystream of private training's noise generator (null where it runs OpenSSL's AES-128-CTR). For tests.
Napi::Value NoiseKeystream(const Napi::CallbackInfo& info);

// inspectModel(bytes: Buffer | Uint8Array) -> { methods, parameters, buffers, forward, training }
Napi::Value InspectModel(const Napi::CallbackInfo& info);

// extractTensors(bytes: Buffer | Uint8Array, maxBytes: integer 0..2^53-1)
//   -> [{ name, dtype, shape, data: Buffer }]
Napi::Value ExtractTensors(const Napi::CallbackInfo& info);

// --- Per-sample gradient engine (binding/engine.cc); heavy, for analysis and tests ---
// gradientPlan(bytes, inputs?: [{ data, dtype, shape }]) -> [{ parameter, rule, reason }]
Napi::Value GradientPlan(const Napi::CallbackInfo& info);

// perSampleGradients(bytes, inputs, labels, loss: { kind, labelSmoothing? }, method: 'engine' | 'loop')
//   -> [{ name, shape: [batch, ...], data: Float32Array }]
Napi::Value PerSampleGradients(const Napi::CallbackInfo& info);

// clippedGradientSum(bytes, inputs, labels, loss, clip: { maxGradNorm, groups?, bounds? },
//   path?: 'auto' | 'materialize' | 'ghost') -> { grads: [{ name, shape, data }], perSampleNorms, losses }
Napi::Value ClippedGradientSum(const Napi::CallbackInfo& info);
// --- end of per-sample gradient engine ---

}  // namespace bastion::binding

#endif  // BASTION_BINDING_EXPORTS_H_
