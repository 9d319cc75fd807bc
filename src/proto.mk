# src/proto.mk

# IMAP (imap.c, imap_backend.c, imap_parse.c)
libpostern_a_SOURCES += src/imap.c src/imap_backend.c src/imap_int.h \
	src/imap_parse.c src/imap_parse.h
check_PROGRAMS += tests/unit/test_imap_parse
tests_unit_test_imap_parse_SOURCES = tests/unit/test_imap_parse.c
tests_unit_test_imap_parse_LDADD = $(POSTERN_LIBS)
TESTS += tests/unit/test_imap_parse

# what backends answered to EHLO and CAPA (backend_caps.c)
libpostern_a_SOURCES += src/backend_caps.c src/backend_caps.h
check_PROGRAMS += tests/unit/test_backend_caps
tests_unit_test_backend_caps_SOURCES = tests/unit/test_backend_caps.c
tests_unit_test_backend_caps_LDADD = $(POSTERN_LIBS)
TESTS += tests/unit/test_backend_caps

# SMTP (smtp.c, smtp_backend.c, smtp_parse.c, xtext.c)
libpostern_a_SOURCES += src/smtp.c src/smtp_backend.c src/smtp_int.h \
	src/smtp_parse.c src/smtp_parse.h src/xtext.c src/xtext.h
check_PROGRAMS += tests/unit/test_smtp_parse tests/unit/test_xtext
tests_unit_test_smtp_parse_SOURCES = tests/unit/test_smtp_parse.c
tests_unit_test_smtp_parse_LDADD = $(POSTERN_LIBS)
tests_unit_test_xtext_SOURCES = tests/unit/test_xtext.c
tests_unit_test_xtext_LDADD = $(POSTERN_LIBS)
TESTS += tests/unit/test_smtp_parse tests/unit/test_xtext

# POP3 and SASL (pop3.c, pop3_parse.c, sasl.c)
libpostern_a_SOURCES += src/pop3.c src/pop3_parse.c src/pop3_parse.h \
	src/sasl.c
check_PROGRAMS += tests/unit/test_sasl tests/unit/test_pop3_parse \
	tests/unit/test_pop3
tests_unit_test_sasl_SOURCES = tests/unit/test_sasl.c
tests_unit_test_sasl_LDADD = $(POSTERN_LIBS)
tests_unit_test_pop3_parse_SOURCES = tests/unit/test_pop3_parse.c
tests_unit_test_pop3_parse_LDADD = $(POSTERN_LIBS)
tests_unit_test_pop3_SOURCES = tests/unit/test_pop3.c
tests_unit_test_pop3_LDADD = $(POSTERN_LIBS)
TESTS += tests/unit/test_sasl tests/unit/test_pop3_parse tests/unit/test_pop3
