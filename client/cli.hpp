// primary-client's command line: one licensing agent, or N simulated ones,
// printing every state change. The logic lives here; main.cpp only calls run().
#pragma once

namespace primary::client::cli {

// Exit codes: 0 every agent ended licensed, 1 some did not (or a
// reservation failed), 2 bad command line or setup file.
int run(int argc, char** argv);

}  // namespace primary::client::cli
