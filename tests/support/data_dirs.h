// Where the tests find ../shared/data and ../shared/fixtures: the CORRTRACK_DATA_DIR /
// CORRTRACK_FIXTURES_DIR environment variables, else the folders CMake was configured with
// (CORRTRACK_TEST_DATA_DIR / CORRTRACK_TEST_FIXTURES_DIR). Free of any test framework, so the
// GoogleTest and QtTest suites share it.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <string>

namespace corrtrack::test {

// ../shared/data; empty when absent.
inline std::string data_dir() {
  const char* env = std::getenv("CORRTRACK_DATA_DIR");
  std::string d = env ? env : CORRTRACK_TEST_DATA_DIR;
  return std::filesystem::is_directory(d) ? d : std::string();
}

// ../shared/fixtures; empty when absent.
inline std::string fixtures_dir() {
  const char* env = std::getenv("CORRTRACK_FIXTURES_DIR");
  std::string d = env ? env : CORRTRACK_TEST_FIXTURES_DIR;
  return std::filesystem::is_directory(d) ? d : std::string();
}

}  // namespace corrtrack::test
