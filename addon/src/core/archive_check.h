// Checks run on a TorchScript archive before torch::jit::load sees it, for inputs known to crash
// libtorch 1.13's loader instead of raising an error.
#ifndef BASTION_CORE_ARCHIVE_CHECK_H_
#define BASTION_CORE_ARCHIVE_CHECK_H_

#include <memory>

namespace caffe2::serialize {
class ReadAdapterInterface;
}  // namespace caffe2::serialize

namespace bastion::core {

// Throws (c10::Error, torch::jit::ErrorReport or std::runtime_error) when the archive cannot be
// read as a zip or its TorchScript source holds a construct the loader would crash on.
void CheckArchive(const std::shared_ptr<caffe2::serialize::ReadAdapterInterface>& archive);

}  // namespace bastion::core

#endif  // BASTION_CORE_ARCHIVE_CHECK_H_
