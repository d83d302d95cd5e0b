// Errors of the native core. Native code never exits or aborts: every check throws
// onestep::Error, which the N-API glue turns into a JS Error carrying `code`.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace onestep {

class Error : public std::runtime_error {
 public:
  Error(std::string code, const std::string& message)
      : std::runtime_error(message), code_(std::move(code)) {}
  const std::string& code() const { return code_; }

 private:
  std::string code_;
};

namespace detail {
inline void append(std::ostringstream&) {}
template <typename T, typename... Rest>
void append(std::ostringstream& os, const T& first, const Rest&... rest) {
  os << first;
  append(os, rest...);
}
}  // namespace detail

// Builds a message from any streamable parts: fail("ERR_X", "bad shape ", n, " at ", name).
template <typename... Parts>
[[noreturn]] void fail(const char* code, const Parts&... parts) {
  std::ostringstream os;
  detail::append(os, parts...);
  throw Error(code, os.str());
}

template <typename... Parts>
void check(bool condition, const char* code, const Parts&... parts) {
  if (!condition) fail(code, parts...);
}

}  // namespace onestep
