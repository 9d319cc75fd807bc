# src/tls.mk - GnuTLS: credentials and handshake (tls.c), a handshake
# flight gathered into one send (tls_flight.c), OpenSSL cipher strings ->
# GnuTLS priorities (tls_priority.c), the session cache (tls_cache.c), a
# certificate's DN as NGINX shows it (tls_dn.c), client certificates:
# trust anchors, CRLs and the check after the handshake (tls_verify.c).
# src/tls.h is listed in core.mk.
libpostern_a_SOURCES += src/tls.c src/tls_flight.c src/tls_flight.h \
	src/tls_priority.c src/tls_cache.c src/tls_dn.c src/tls_verify.c src/tls_int.h

check_PROGRAMS += tests/unit/test_tls_priority tests/unit/test_tls \
	tests/unit/test_tls_flight
tests_unit_test_tls_priority_SOURCES = tests/unit/test_tls_priority.c
tests_unit_test_tls_priority_LDADD = $(POSTERN_LIBS)
tests_unit_test_tls_SOURCES = tests/unit/test_tls.c
tests_unit_test_tls_LDADD = $(POSTERN_LIBS)
tests_unit_test_tls_flight_SOURCES = tests/unit/test_tls_flight.c
tests_unit_test_tls_flight_LDADD = $(POSTERN_LIBS)
TESTS += tests/unit/test_tls_priority tests/unit/test_tls \
	tests/unit/test_tls_flight
