// Looking at processes through /proc: the helpers live in tools/chaos (the
// fault-injection harness uses them too); tests name them primary::test::.
#pragma once

#include "tools/chaos/procfs.hpp"

namespace primary::test {

using chaos::children_named;
using chaos::children_of;
using chaos::proc_info;
using chaos::process_gone;
using chaos::ProcInfo;

}  // namespace primary::test
