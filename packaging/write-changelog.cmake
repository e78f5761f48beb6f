# Writes CHANGELOG_OUT (changelog.gz: a native package's) for version CHANGELOG_VERSION,
# signed by CHANGELOG_MAINTAINER: at configure time, and again by cpack with
# the version being packaged (CPackProjectConfig.cmake).
string(TIMESTAMP date "%a, %d %b %Y %H:%M:%S +0000" UTC)
string(REGEX REPLACE "\\.gz$" "" plain "${CHANGELOG_OUT}")
file(WRITE "${plain}"
"primary-server (${CHANGELOG_VERSION}) unstable; urgency=medium

  * Built from the project's CMake build with cpack -G DEB.

 -- ${CHANGELOG_MAINTAINER}  ${date}
")
execute_process(COMMAND gzip -9nf "${plain}" RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "gzip ${plain} failed")
endif()
