# The core: threads, connections, sessions, process (the lead's files).
libpostern_a_SOURCES += \
	src/str.c src/str.h src/buf.c src/buf.h src/clock.c src/clock.h \
	src/log.c src/log.h src/conn.c src/conn.h \
	src/session.c src/session_backend.c src/session_creds.c \
	src/session_park.c \
	src/session_int.h src/session.h src/proto.c src/proto.h \
	src/stamp.c src/stamp.h \
	src/pool.c src/pool.h src/acceptor.c src/listener.c src/listener.h \
	src/relay.c src/relay.h src/process.c src/process.h \
	src/conf.h src/auth.h src/sasl.h src/tls.h

# sized strings and the text builder (str.c, core)
check_PROGRAMS += tests/unit/test_str
tests_unit_test_str_SOURCES = tests/unit/test_str.c
tests_unit_test_str_LDADD = $(POSTERN_LIBS)
TESTS += tests/unit/test_str

# the allocator's thresholds (process.c, core)
check_PROGRAMS += tests/unit/test_process
tests_unit_test_process_SOURCES = tests/unit/test_process.c
tests_unit_test_process_LDADD = $(POSTERN_LIBS)
TESTS += tests/unit/test_process

# error_log targets: reopen and hand-over to `user` (log.c, core)
check_PROGRAMS += tests/unit/test_log
tests_unit_test_log_SOURCES = tests/unit/test_log.c
tests_unit_test_log_LDADD = $(POSTERN_LIBS)
TESTS += tests/unit/test_log
