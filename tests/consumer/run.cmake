# ctest client_consumer: installs the `client` component of the build in
# BUILD_DIR into a fresh prefix under WORK_DIR, builds this folder's
# consumer against that prefix alone with find_package, and runs it.
#   cmake -DBUILD_DIR=... -DWORK_DIR=... [-DCXX=...] [-DFLAGS=...] -P run.cmake
foreach(var BUILD_DIR WORK_DIR)
  if(NOT ${var})
    message(FATAL_ERROR "run.cmake: give -D${var}=...")
  endif()
endforeach()

function(step what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${what} failed (${rc}):\n${out}")
  endif()
  message(STATUS "${what}: ok")
  set(step_output "${out}" PARENT_SCOPE)
endfunction()

set(prefix ${WORK_DIR}/prefix)
file(REMOVE_RECURSE ${WORK_DIR})

step("install" ${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${prefix} --component client)
# What a consumer gets: the client library, its headers and package files;
# nothing of the server's internals.
file(GLOB_RECURSE installed RELATIVE ${prefix} ${prefix}/*)
foreach(path ${installed})
  if(path MATCHES "primary_common|/common/|zmq|msgpack")
    message(FATAL_ERROR "the install holds ${path}: the client library leaks an internal dependency")
  endif()
endforeach()
if(NOT installed MATCHES "primaryClientConfig.cmake")
  message(FATAL_ERROR "no primaryClientConfig.cmake installed:\n${installed}")
endif()

set(args -S ${CMAKE_CURRENT_LIST_DIR} -B ${WORK_DIR}/build -DCMAKE_PREFIX_PATH=${prefix}
    -DCMAKE_BUILD_TYPE=Release)
if(CXX)
  list(APPEND args -DCMAKE_CXX_COMPILER=${CXX})
endif()
if(FLAGS)  # e.g. the sanitizer flags the library was built with
  list(APPEND args "-DCMAKE_CXX_FLAGS=${FLAGS}" "-DCMAKE_EXE_LINKER_FLAGS=${FLAGS}")
endif()
step("configure the consumer" ${CMAKE_COMMAND} ${args})
step("build the consumer" ${CMAKE_COMMAND} --build ${WORK_DIR}/build)
step("run the consumer" ${WORK_DIR}/build/consumer)
message(STATUS "${step_output}")
