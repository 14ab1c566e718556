// The corrtrack command: train, propagate, eval, inspect and bench, headless.
#include <torch/torch.h>

#include "cli_common.h"
#include "corrtrack/core.h"

#include <algorithm>
#include <cstdlib>
#include <iostream>
#include <thread>

namespace corrtrack::cli {

void json_emit(const nlohmann::json& j, const std::string& path) {
  if (path.empty()) {
    std::cout << j.dump(2) << std::endl;
  } else {
    file_write_atomic(path, j.dump(2) + "\n");
  }
}

namespace {
std::vector<std::string>& args_storage() {
  static std::vector<std::string> args;
  return args;
}
}  // namespace

void program_args_set(int argc, char** argv) { args_storage().assign(argv, argv + argc); }
const std::vector<std::string>& program_args() { return args_storage(); }

}  // namespace corrtrack::cli

namespace {

// Every failure is one line, "corrtrack: error: ...", and exit code 1.
int fail(std::string message) {
  for (auto& c : message) if (c == '\n' || c == '\r') c = ' ';
  std::cerr << "corrtrack: error: " << message << std::endl;
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  corrtrack::openmp_passive_wait_ensure(argv);
  corrtrack::cli::program_args_set(argc, argv);
  CLI::App app{"corrtrack: self-supervised video correspondence, mask propagation and DAVIS evaluation"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("corrtrack ") + CORRTRACK_VERSION);
  bool verbose = false, quiet = false;
  int threads = 2;
  app.add_flag("-v,--verbose", verbose, "Debug logging");
  app.add_flag("-q,--quiet", quiet, "Errors only");
  auto* threads_option = app.add_option("--threads", threads, "Compute threads (0 = all cores)")->capture_default_str();
  app.parse_complete_callback([&] {
    corrtrack::log_set_verbosity(quiet ? 0 : (verbose ? 2 : 1));
    // A worker of a local multi-process run shares the cores with its siblings.
    const char* local_world = std::getenv("LOCAL_WORLD_SIZE");
    if (threads_option->count() == 0 && local_world && std::atoi(local_world) > 1) {
      threads = std::max(1, int(std::thread::hardware_concurrency()) / std::atoi(local_world));
    }
    corrtrack::threads_set(threads);
  });
  // Commands with sub-commands of their own, filled by the registration functions.
  app.add_subcommand("inspect", "Describe a video, frame folder or checkpoint; pictures of what a model learned")->require_subcommand(1);
  app.add_subcommand("bench", "Speed and memory benchmarks (JSON on stdout)")->require_subcommand(1);
  corrtrack::cli::register_video_commands(app);
  corrtrack::cli::register_tracking_commands(app);
  corrtrack::cli::register_train_commands(app);
  corrtrack::cli::register_inspect_commands(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::Success& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    return fail(std::string(e.what()) + " (see --help)");
  } catch (const corrtrack::SettingError& e) {
    return fail(std::string("--") + e.what());  // the library names the setting; here it is an option
  } catch (const std::exception& e) {
    return fail(corrtrack::error_message(e));
  }
  return 0;
}
