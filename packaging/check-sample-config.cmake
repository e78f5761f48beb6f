# ctest sample_config_lists_every_setting: every setting in
# `primary-server --help` has a line `# name = default` (or `name = value`)
# in the sample packaging/primary.toml, and the sample with every line
# uncommented is read without complaint by every program that reads it
# (primary-server passes --config to its children).
#   -DSERVER=exe -DSAMPLE=file -DBIN_DIR=dir -DWORK_DIR=dir
cmake_minimum_required(VERSION 3.22)
execute_process(COMMAND ${SERVER} --help OUTPUT_VARIABLE help RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${SERVER} --help exited ${rc}")
endif()
file(READ ${SAMPLE} sample)
string(REGEX MATCHALL "\n +--[a-z0-9-]+" options "${help}")
# Command-line only: help, the config file itself, one-shot actions.
set(not_settings help config restore force)
set(missing)
set(count 0)
foreach(option ${options})
  string(REGEX REPLACE "^\n +--" "" name "${option}")
  if(name IN_LIST not_settings)
    continue()
  endif()
  math(EXPR count "${count} + 1")
  if(NOT sample MATCHES "\n(# )?${name} = ")
    list(APPEND missing ${name})
  endif()
endforeach()
if(count LESS 20)
  message(FATAL_ERROR "only ${count} settings found in --help:\n${help}")
endif()
if(missing)
  message(FATAL_ERROR "settings missing from ${SAMPLE}: ${missing}")
endif()
message(STATUS "${count} settings, all in ${SAMPLE}")

# Uncommented, the file must parse everywhere: each program then stops at
# the bad --log-level given on the command line, not at a key of the file.
file(MAKE_DIRECTORY ${WORK_DIR})
string(REGEX REPLACE "\n# ([a-z0-9-]+ = )" "\n\\1" uncommented "${sample}")
file(WRITE ${WORK_DIR}/uncommented.toml "${uncommented}")
foreach(prog primary-server primary-broker primary-licensed primary-updater primary-admin primary-web)
  execute_process(COMMAND ${BIN_DIR}/${prog} --config ${WORK_DIR}/uncommented.toml --log-level not-a-level
                  OUTPUT_VARIABLE out ERROR_VARIABLE out RESULT_VARIABLE rc TIMEOUT 20)
  if(NOT out MATCHES "log-level")
    message(FATAL_ERROR "${prog} refuses the uncommented sample (exit ${rc}): ${out}")
  endif()
endforeach()
message(STATUS "the uncommented sample is read by every program")
