# packaging/package.cmake - `make package`: a Debian package built with CPack.
#
# Contents: /usr/sbin/brokerside, its man page brokerside(8) (help2man over
# `brokerside --help`, plus packaging/brokerside.h2m), the unit
# /lib/systemd/system/brokerside.service, /etc/brokerside/brokerside.json
# (conf/single-broker.json, a conffile), /var/lib/brokerside and
# /var/log/brokerside, the docs and the example configurations. The
# maintainer scripts in packaging/debian create the `brokerside` system user
# and hand it the state directories. Nothing else of the build is installed
# (the library is static; test tools stay in the build tree).

find_program(HELP2MAN help2man)
set(BS_MAN ${CMAKE_BINARY_DIR}/brokerside.8.gz)
if(HELP2MAN)
  add_custom_command(OUTPUT ${BS_MAN}
    COMMAND ${HELP2MAN} --no-info --section=8
            --include=${CMAKE_SOURCE_DIR}/packaging/brokerside.h2m
            --output=${CMAKE_BINARY_DIR}/brokerside.8 $<TARGET_FILE:brokerside>
    COMMAND gzip -9nf ${CMAKE_BINARY_DIR}/brokerside.8
    DEPENDS brokerside ${CMAKE_SOURCE_DIR}/packaging/brokerside.h2m
    COMMENT "brokerside(8) from brokerside --help"
    VERBATIM)
  add_custom_target(manpage ALL DEPENDS ${BS_MAN})
  install(FILES ${BS_MAN} DESTINATION share/man/man8)
else()
  install(CODE "message(FATAL_ERROR \"help2man not found: run make deps (it makes brokerside(8))\")")
endif()

install(TARGETS brokerside RUNTIME DESTINATION sbin)
install(FILES ${CMAKE_SOURCE_DIR}/packaging/brokerside.service DESTINATION /lib/systemd/system)
install(FILES ${CMAKE_SOURCE_DIR}/conf/single-broker.json DESTINATION /etc/brokerside
        RENAME brokerside.json
        PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ)
install(DIRECTORY DESTINATION /var/lib/brokerside)
install(DIRECTORY DESTINATION /var/log/brokerside)
install(FILES ${CMAKE_SOURCE_DIR}/README.md DESTINATION share/doc/brokerside)
install(DIRECTORY ${CMAKE_SOURCE_DIR}/docs/ DESTINATION share/doc/brokerside FILES_MATCHING PATTERN "*.md")
install(DIRECTORY ${CMAKE_SOURCE_DIR}/conf/ DESTINATION share/doc/brokerside/examples
        FILES_MATCHING PATTERN "*.json")
install(FILES ${CMAKE_SOURCE_DIR}/packaging/debian/copyright DESTINATION share/doc/brokerside)

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME brokerside)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "brokerside maintainers <brokerside@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "security and observability sidecar beside an Apache Kafka broker")
# The extended description (CPack puts the summary line above it).
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION "TLS termination and origination, Kafka address rewriting, per-API
metrics, a signed hash-chained audit trail, envelope encryption of record
values at rest (AWS KMS or a local key), and shipping of logs, metrics and
audit events to files, CloudWatch, S3 and Firehose. Runs as a hardened systemd
service (Type=notify, watchdog, sandboxed).")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# useradd/groupadd/userdel come from passwd; deb-systemd-helper from init-system-helpers
set(CPACK_DEBIAN_PACKAGE_DEPENDS "passwd, init-system-helpers")
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "systemd")
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${CMAKE_SOURCE_DIR}/packaging/debian/conffiles
    ${CMAKE_SOURCE_DIR}/packaging/debian/postinst
    ${CMAKE_SOURCE_DIR}/packaging/debian/prerm
    ${CMAKE_SOURCE_DIR}/packaging/debian/postrm)
set(CPACK_OUTPUT_FILE_PREFIX ${CMAKE_BINARY_DIR}/package)
include(CPack)
