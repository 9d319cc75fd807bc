# src/proto.mk

# IMAP (imap.c, imap_parse.c)
libpostern_a_SOURCES += src/imap.c src/imap_parse.c src/imap_parse.h
check_PROGRAMS += tests/unit/test_imap_parse
tests_unit_test_imap_parse_SOURCES = tests/unit/test_imap_parse.c
tests_unit_test_imap_parse_LDADD = $(POSTERN_LIBS)
TESTS += tests/unit/test_imap_parse
