// Shared pieces of the corrtrack command: subcommand registration and JSON output.
#pragma once

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace corrtrack::cli {

// Each file of app/ registers its subcommands on the root app.
void register_video_commands(CLI::App& app);
void register_tracking_commands(CLI::App& app);
void register_train_commands(CLI::App& app);
void register_inspect_commands(CLI::App& app);

// The command line as main() received it (for `train --nproc`, which starts copies of itself).
void program_args_set(int argc, char** argv);
const std::vector<std::string>& program_args();

// Prints JSON to stdout (pretty) or writes it atomically to a file when path is non-empty.
void json_emit(const nlohmann::json& j, const std::string& path = "");

// "WxH" -> (W, H), each 1..16384; throws Error naming the option ("--size must look like 854x480, got ...").
std::pair<int, int> parse_size(const std::string& text, const std::string& option);

}  // namespace corrtrack::cli
