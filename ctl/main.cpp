// primaryctl: the admin command line. See ctl.hpp.
#include "ctl/ctl.hpp"

int main(int argc, char** argv) { return primary::ctl::run(argc, argv); }
