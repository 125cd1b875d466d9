# The libtorch addon. Everything libtorch-specific (include and library dirs, rpath, the C++11 ABI
# flag, the C++ standard) comes from scripts/libtorch.mjs, which reads LIBTORCH_DIR (default /usr).
{
  "targets": [
    {
      "target_name": "bastion",
      "sources": [
        "addon/src/module.cc",
        "addon/src/binding/args.cc",
        "addon/src/binding/engine.cc",
        "addon/src/binding/guard.cc",
        "addon/src/binding/model.cc",
        "addon/src/binding/runtime.cc",
        "addon/src/binding/trainer.cc",
        "addon/src/core/archive_check.cc",
        "addon/src/core/dtype.cc",
        "addon/src/core/dp/branch_folding.cc",
        "addon/src/core/dp/engine_api.cc",
        "addon/src/core/dp/grad_sample/conv.cc",
        "addon/src/core/dp/grad_sample/conv_kernel.cc",
        "addon/src/core/dp/grad_sample/cpu_isa.cc",
        "addon/src/core/dp/grad_sample/elementwise.cc",
        "addon/src/core/dp/grad_sample/embedding.cc",
        "addon/src/core/dp/grad_sample/fallback.cc",
        "addon/src/core/dp/grad_sample/linear.cc",
        "addon/src/core/dp/grad_sample/normalization.cc",
        "addon/src/core/dp/grad_sample/recurrent.cc",
        "addon/src/core/dp/grad_sample/rnn_steps.cc",
        "addon/src/core/dp/grad_sample/registry.cc",
        "addon/src/core/dp/gaussian.cc",
        "addon/src/core/dp/graph_engine.cc",
        "addon/src/core/dp/tap.cc",
        "addon/src/core/dp/host.cc",
        "addon/src/core/dp/loop_engine.cc",
        "addon/src/core/dp/loss.cc",
        "addon/src/core/dp/noise.cc",
        "addon/src/core/dp/sampler.cc",
        "addon/src/core/dp/trainer.cc",
        "addon/src/core/graph_json.cc",
        "addon/src/core/model.cc",
        "addon/src/core/runtime.cc",
        "addon/src/core/sdpa_shim.cc",
        "addon/src/core/text.cc"
      ],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")",
        "addon/src",
        "<!@(node scripts/libtorch.mjs include_dirs)"
      ],
      "defines": [
        "NAPI_VERSION=8",
        # C++ exceptions cross into JS; without _ALL a c10::Error escaping a guard would abort.
        "NAPI_CPP_EXCEPTIONS",
        "NODE_ADDON_API_CPP_EXCEPTIONS_ALL",
        "NODE_ADDON_API_DISABLE_DEPRECATED",
        # A worker terminated during a call cannot take a JS exception; without this node-addon-api
        # throws from its callback wrapper and the process aborts.
        "NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS",
        "<!@(node scripts/libtorch.mjs defines)"
      ],
      "cflags!": ["-fno-exceptions", "-fno-rtti", "-O3"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17"],
      # -O2 with the dynamic vectoriser cost model: the hand-written loops over tensors (embedding
      # rows, norms) vectorise as at -O3 (the default "very cheap" model leaves them scalar).
      "cflags": ["-O2", "-fvect-cost-model=dynamic"],
      "cflags_cc": [
        "<!@(node scripts/libtorch.mjs cxxstd)",
        # The OpenMP of libtorch's own build, so that at::parallel_for in the addon runs in parallel.
        "<!@(node scripts/libtorch.mjs openmp)",
        "-fexceptions",
        "-frtti",
        "-Wno-unused-parameter",
        "-Wno-missing-field-initializers"
      ],
      "libraries": ["<!@(node scripts/libtorch.mjs libraries)"],
      "conditions": [
        # Node's common.gypi defines _GLIBCXX_USE_CXX11_ABI=1; drop it when libtorch needs 0.
        ["'<!(node scripts/libtorch.mjs defines)'!='_GLIBCXX_USE_CXX11_ABI=1'", {
          "defines!": ["_GLIBCXX_USE_CXX11_ABI=1"]
        }]
      ],
      # Bind every symbol at load: a libtorch of another C++ ABI then fails in require(), where it can
      # be caught, instead of killing the process at the first call.
      "ldflags": ["-Wl,-z,now", "<!@(node scripts/libtorch.mjs openmp)"]
    }
  ]
}
