# src/addr.mk - the client's real address: the PROXY protocol (v1/v2
# parser, v1 writer, the worker's header read) and the `resolver` setting
# (c-ares: forward-confirmed client host names, Auth-Server names).
# The fuzz target tests/fuzz/fuzz_proxy_protocol.c is registered by
# tests/fuzz/targets.mk (tests/fuzz/gen-targets.sh).
libpostern_a_SOURCES += \
	src/proxy_protocol.c src/proxy_protocol.h \
	src/resolver.c src/resolver.h

check_PROGRAMS += tests/unit/test_proxy_protocol \
	tests/unit/test_resolver_name tests/unit/test_resolver
tests_unit_test_proxy_protocol_SOURCES = tests/unit/test_proxy_protocol.c
tests_unit_test_proxy_protocol_LDADD = $(POSTERN_LIBS)
tests_unit_test_resolver_name_SOURCES = tests/unit/test_resolver_name.c
tests_unit_test_resolver_name_LDADD = $(POSTERN_LIBS)
# starts tests/integration/dnsstub.py (found through $POSTERN_SRCDIR,
# or the path compiled in here) on a loopback port
tests_unit_test_resolver_SOURCES = tests/unit/test_resolver.c
tests_unit_test_resolver_CPPFLAGS = $(AM_CPPFLAGS) \
	-DDNSSTUB='"$(abs_top_srcdir)/tests/integration/dnsstub.py"'
tests_unit_test_resolver_LDADD = $(POSTERN_LIBS)
TESTS += tests/unit/test_proxy_protocol tests/unit/test_resolver_name \
	tests/unit/test_resolver

EXTRA_DIST += tests/integration/dnsstub.py tests/fuzz/proxy_protocol.dict
