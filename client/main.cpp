// primary-client: a Client's licensing agent on the command line. See cli.hpp.
#include "cli.hpp"

int main(int argc, char** argv) { return primary::client::cli::run(argc, argv); }
