# Installing the Primary Server as a system service, and its Debian packages.
#
# Three install components, one Debian package each (`cpack -G DEB` in the
# build directory; docs/operations.md, "Installing as a package"):
#   server  -> primary-server         the programs a customer's server runs,
#                                     the updater's network module, the systemd
#                                     unit, sysusers.d and tmpfiles.d snippets,
#                                     /etc/primary/primary.toml, man pages
#   client  -> libprimary-client-dev  libprimary_client.so, headers, CMake package
#   vendor  -> primary-vendor         the vendor's tool (tools/vendor/)
# The programs' install() lines are beside their targets; this file holds the
# system files and CPack. Packages are built from a build configured with
# -DCMAKE_INSTALL_PREFIX=/usr (the unit's ExecStart and /etc paths are
# configured from the prefix); cpack refuses any other prefix.
include(GNUInstallDirs)

set(PRIMARY_BINDIR ${CMAKE_INSTALL_FULL_BINDIR})
set(PRIMARY_CONFDIR ${CMAKE_INSTALL_FULL_SYSCONFDIR}/primary)
# systemd's StateDirectory=primary: always /var/lib/primary.
set(PRIMARY_STATEDIR /var/lib/primary)
set(PRIMARY_SYSUSERSDIR ${CMAKE_INSTALL_PREFIX}/lib/sysusers.d)
# Install destinations relative to the prefix (so `cmake --install --prefix`
# moves them), except /etc for the /usr prefix.
set(systemd_dest lib/systemd/system)
set(sysusers_dest lib/sysusers.d)
set(tmpfiles_dest lib/tmpfiles.d)
if(CMAKE_INSTALL_FULL_SYSCONFDIR STREQUAL "${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_SYSCONFDIR}")
  set(conf_dest ${CMAKE_INSTALL_SYSCONFDIR}/primary)
else()
  set(conf_dest ${PRIMARY_CONFDIR})
endif()
set(pkg_src ${PROJECT_SOURCE_DIR}/packaging)
set(pkg_bin ${PROJECT_BINARY_DIR}/packaging)

# ---- the server component's system files
configure_file(${pkg_src}/systemd/primary-server.service.in ${pkg_bin}/primary-server.service @ONLY)
install(FILES ${pkg_bin}/primary-server.service DESTINATION ${systemd_dest} COMPONENT server)
install(FILES ${pkg_src}/systemd/primary.sysusers DESTINATION ${sysusers_dest}
        RENAME primary.conf COMPONENT server)
install(FILES ${pkg_src}/systemd/primary.tmpfiles DESTINATION ${tmpfiles_dest}
        RENAME primary.conf COMPONENT server)
install(FILES ${pkg_src}/primary.toml DESTINATION ${conf_dest} COMPONENT server)

# Man pages from --help (help2man), compressed as Debian wants them.
find_program(HELP2MAN help2man)
find_program(GZIP gzip)
function(primary_man_page prog what)
  set(page ${pkg_bin}/man/${prog}.1)
  add_custom_command(OUTPUT ${page}.gz
    COMMAND ${CMAKE_COMMAND} -E make_directory ${pkg_bin}/man
    COMMAND ${HELP2MAN} --no-info --no-discard-stderr --section 1 --version-string ${PROJECT_VERSION}
            --name ${what} --output ${page} $<TARGET_FILE:${prog}>
    COMMAND ${GZIP} -9nf ${page}
    DEPENDS ${prog}
    COMMENT "Writing the ${prog}(1) man page"
    VERBATIM)
  add_custom_target(${prog}_man_page ALL DEPENDS ${page}.gz)
  install(FILES ${page}.gz DESTINATION ${CMAKE_INSTALL_MANDIR}/man1 COMPONENT server)
endfunction()
if(HELP2MAN AND GZIP)
  primary_man_page(primary-server "the Primary Server: private Redis, broker, workers and console")
  primary_man_page(primaryctl "the Primary Server's admin command line")
else()
  message(WARNING "help2man or gzip not found: no man pages (apt-get install help2man; scripts/debian-packages.txt)")
endif()

# Every primary-server setting is in the sample primary.toml.
if(PRIMARY_BUILD_TESTS)
  add_test(NAME sample_config_lists_every_setting
           COMMAND ${CMAKE_COMMAND} -DSERVER=$<TARGET_FILE:primary-server> -DSAMPLE=${pkg_src}/primary.toml
                   -DBIN_DIR=$<TARGET_FILE_DIR:primary-server> -DWORK_DIR=${pkg_bin}/sample-config-test
                   -P ${pkg_src}/check-sample-config.cmake)
  set_tests_properties(sample_config_lists_every_setting PROPERTIES LABELS unit)
endif()

# copyright and changelog for every package (Debian policy 12.5, 12.7); the
# changelog is written again at cpack time with the version being packaged.
set(PRIMARY_MAINTAINER "Primary Server maintainers <primary-server@example.org>")
execute_process(COMMAND ${CMAKE_COMMAND} -DCHANGELOG_VERSION=${PROJECT_VERSION}
                        -DCHANGELOG_OUT=${pkg_bin}/changelog.gz
                        "-DCHANGELOG_MAINTAINER=${PRIMARY_MAINTAINER}"
                        -P ${pkg_src}/write-changelog.cmake)
set(PRIMARY_PACKAGES server:primary-server client:libprimary-client-dev vendor:primary-vendor)
foreach(entry ${PRIMARY_PACKAGES})
  string(REPLACE ":" ";" entry "${entry}")
  list(GET entry 0 component)
  list(GET entry 1 package)
  install(FILES ${pkg_src}/debian/copyright DESTINATION ${CMAKE_INSTALL_DATAROOTDIR}/doc/${package}
          COMPONENT ${component})
  install(FILES ${pkg_bin}/changelog.gz DESTINATION ${CMAKE_INSTALL_DATAROOTDIR}/doc/${package}
          COMPONENT ${component})
endforeach()

# ---- CPack: one .deb per component
foreach(script postinst prerm postrm conffiles)
  configure_file(${pkg_src}/debian/${script}.in ${pkg_bin}/debian/${script} @ONLY)
endforeach()
configure_file(${pkg_src}/CPackProjectConfig.cmake.in ${pkg_bin}/CPackProjectConfig.cmake @ONLY)
set(CPACK_PROJECT_CONFIG_FILE ${pkg_bin}/CPackProjectConfig.cmake)

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME primary-server)
set(CPACK_PACKAGE_VENDOR "Primary Server")
set(CPACK_PACKAGE_CONTACT "${PRIMARY_MAINTAINER}")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_HOMEPAGE_URL "https://example.org/primary-server")
# Absolute destinations (/etc/primary) land in the package, not on this host.
set(CPACK_SET_DESTDIR ON)
set(CPACK_INSTALL_PREFIX ${CMAKE_INSTALL_PREFIX})
set(CPACK_PACKAGING_INSTALL_PREFIX ${CMAKE_INSTALL_PREFIX})
set(CPACK_STRIP_FILES ON)
set(CPACK_INSTALL_DEFAULT_DIRECTORY_PERMISSIONS
    OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE WORLD_READ WORLD_EXECUTE)
set(CPACK_COMPONENTS_ALL server client vendor)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)

set(CPACK_DEBIAN_SERVER_PACKAGE_NAME primary-server)
set(CPACK_DEBIAN_SERVER_PACKAGE_SECTION net)
set(CPACK_DEBIAN_SERVER_PACKAGE_DEPENDS "redis-server, adduser")
set(CPACK_DEBIAN_SERVER_PACKAGE_CONTROL_EXTRA
    ${pkg_bin}/debian/postinst ${pkg_bin}/debian/prerm ${pkg_bin}/debian/postrm ${pkg_bin}/debian/conffiles)
set(CPACK_COMPONENT_SERVER_DESCRIPTION
"on-premise license and update server for the Client fleet
primary-server supervises a private Redis, the ZeroMQ broker and the
licensing, update and admin workers, and the web console. The package
installs the systemd unit primary-server.service, the primary user,
/etc/primary/primary.toml and /var/lib/primary; primaryctl is the admin's
command line and primary-client the Client agent.")

set(CPACK_DEBIAN_CLIENT_PACKAGE_NAME libprimary-client-dev)
set(CPACK_DEBIAN_CLIENT_PACKAGE_SECTION libdevel)
# shlibs for libprimary_client.so.0 (the only library with a soname), and
# ldconfig from a trigger rather than CPack's postinst/postrm.
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS ON)
configure_file(${pkg_src}/debian/client.triggers ${pkg_bin}/client/triggers COPYONLY)
configure_file(${pkg_src}/debian/client.postinst ${pkg_bin}/client/postinst COPYONLY)
configure_file(${pkg_src}/debian/client.postrm ${pkg_bin}/client/postrm COPYONLY)
set(CPACK_DEBIAN_CLIENT_PACKAGE_CONTROL_EXTRA
    ${pkg_bin}/client/triggers ${pkg_bin}/client/postinst ${pkg_bin}/client/postrm)
set(CPACK_COMPONENT_CLIENT_DESCRIPTION
"Primary Server Client licensing library (development files)
The primary::client library a Client links: the licensing agent, the
offline lease check and the setup file reader. Headers, the shared library
and the CMake package (find_package(primaryClient)).")

set(CPACK_DEBIAN_VENDOR_PACKAGE_NAME primary-vendor)
set(CPACK_DEBIAN_VENDOR_PACKAGE_SECTION devel)
set(CPACK_COMPONENT_VENDOR_DESCRIPTION
"Primary Server vendor tool: keys, unlock codes, release bundles
primary-vendor is the vendor's side of licensing and updates: it makes the
vendor keypair, signs unlock codes for a registration code, signs update
feeds and writes offline release bundles. Never installed on a customer's
server.")

include(CPack)
