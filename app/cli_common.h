// Shared pieces of the corrtrack command: subcommand registration and JSON output.
#pragma once

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <string>

namespace corrtrack::cli {

// Each file of app/ registers its subcommands on the root app.
void register_video_commands(CLI::App& app);
void register_tracking_commands(CLI::App& app);
void register_train_commands(CLI::App& app);
void register_inspect_commands(CLI::App& app);

// Prints JSON to stdout (pretty) or writes it atomically to a file when path is non-empty.
void json_emit(const nlohmann::json& j, const std::string& path = "");

}  // namespace corrtrack::cli
