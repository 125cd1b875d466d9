// How core and the N-API side write numbers and shapes in messages, so that one value reads the same
// in every message. Torch-free.
#ifndef BASTION_CORE_TEXT_H_
#define BASTION_CORE_TEXT_H_

#include <cstddef>
#include <string>

namespace bastion::core {

// Shortest round-trip text of a number, as JS prints it ("NaN", "Infinity", "0.1").
std::string NumberText(double number);

// "[2, 3, 4]" for any sequence of sizes (std::vector<int64_t>, c10::IntArrayRef).
template <typename Sizes>
std::string ShapeText(const Sizes& sizes) {
  std::string out = "[";
  size_t d = 0;
  for (const auto size : sizes) out += (d++ ? ", " : "") + std::to_string(size);
  return out + "]";
}

}  // namespace bastion::core

#endif  // BASTION_CORE_TEXT_H_
