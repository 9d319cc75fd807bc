# src/conf.mk - the configuration loader (conf.c, conf_table.c, conf_value.c)
libpostern_a_SOURCES += src/conf.c src/conf_table.c src/conf_value.c \
	src/conf_int.h

check_PROGRAMS += tests/unit/test_conf tests/unit/test_conf_value \
	tests/unit/conf_check
tests_unit_test_conf_SOURCES = tests/unit/test_conf.c
tests_unit_test_conf_LDADD = $(POSTERN_LIBS)
tests_unit_test_conf_value_SOURCES = tests/unit/test_conf_value.c
tests_unit_test_conf_value_LDADD = $(POSTERN_LIBS)
# helper of man_settings.sh: prints the table's names, loads and dumps files
tests_unit_conf_check_SOURCES = tests/unit/conf_check.c
tests_unit_conf_check_LDADD = $(POSTERN_LIBS)

TESTS += tests/unit/test_conf tests/unit/test_conf_value \
	tests/unit/man_settings.sh
EXTRA_DIST += tests/unit/man_settings.sh
