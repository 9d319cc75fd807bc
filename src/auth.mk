# src/auth.mk - asking the auth service: auth_query dispatch, the NGINX
# auth_http client and its response parser, header escaping, and the
# built-in auth_file.  Fuzz targets (tests/fuzz/fuzz_http.c,
# tests/fuzz/fuzz_auth_file.c) are registered by tests/fuzz/targets.mk.
libpostern_a_SOURCES += \
	src/auth.c src/auth.h src/auth_impl.h \
	src/auth_http.c src/auth_http.h src/keepalive.c src/keepalive.h \
	src/http_parse.c src/http_parse.h \
	src/escape.c src/escape.h \
	src/auth_file.c src/auth_file.h

check_PROGRAMS += tests/unit/test_escape tests/unit/test_http_parse \
	tests/unit/test_auth_file tests/unit/test_auth_http \
	tests/unit/test_keepalive
tests_unit_test_escape_SOURCES = tests/unit/test_escape.c
tests_unit_test_escape_LDADD = $(POSTERN_LIBS)
tests_unit_test_http_parse_SOURCES = tests/unit/test_http_parse.c
tests_unit_test_http_parse_LDADD = $(POSTERN_LIBS)
tests_unit_test_auth_file_SOURCES = tests/unit/test_auth_file.c
tests_unit_test_auth_file_LDADD = $(POSTERN_LIBS)
tests_unit_test_auth_http_SOURCES = tests/unit/test_auth_http.c
tests_unit_test_auth_http_LDADD = $(POSTERN_LIBS)
tests_unit_test_keepalive_SOURCES = tests/unit/test_keepalive.c
tests_unit_test_keepalive_LDADD = $(POSTERN_LIBS)
TESTS += tests/unit/test_escape tests/unit/test_http_parse \
	tests/unit/test_auth_file tests/unit/test_auth_http \
	tests/unit/test_keepalive

EXTRA_DIST += tests/integration/authsvc.py
