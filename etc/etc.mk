# etc/etc.mk - the example configuration and the logrotate file.  `make
# install` puts them in $(sysconfdir)/postern/ and
# $(sysconfdir)/logrotate.d/ unless a file is there already (an
# administrator's file is never overwritten); `make uninstall` removes one
# only if it is still unchanged.
EXTRA_DIST += etc/postern.conf etc/postern.logrotate.in
CLEANFILES += etc/postern.logrotate
noinst_DATA = etc/postern.logrotate

postern_confdir = $(sysconfdir)/postern

postern_logrotatedir = $(sysconfdir)/logrotate.d

install-data-local: install-postern-conf
install-postern-conf: etc/postern.logrotate
	$(MKDIR_P) '$(DESTDIR)$(postern_confdir)' '$(DESTDIR)$(postern_logrotatedir)'
	@if test -f '$(DESTDIR)$(postern_confdir)/postern.conf'; then \
	  echo "keeping the existing $(DESTDIR)$(postern_confdir)/postern.conf"; \
	else \
	  echo " install etc/postern.conf $(DESTDIR)$(postern_confdir)"; \
	  $(INSTALL_DATA) '$(srcdir)/etc/postern.conf' \
	    '$(DESTDIR)$(postern_confdir)/postern.conf'; \
	fi
	@if test -f '$(DESTDIR)$(postern_logrotatedir)/postern'; then \
	  echo "keeping the existing $(DESTDIR)$(postern_logrotatedir)/postern"; \
	else \
	  echo " install etc/postern.logrotate $(DESTDIR)$(postern_logrotatedir)/postern"; \
	  $(INSTALL_DATA) etc/postern.logrotate \
	    '$(DESTDIR)$(postern_logrotatedir)/postern'; \
	fi

uninstall-local: uninstall-postern-conf
uninstall-postern-conf:
	@f='$(DESTDIR)$(postern_confdir)/postern.conf'; \
	if test -f "$$f" && cmp -s "$$f" '$(srcdir)/etc/postern.conf'; then \
	  echo " rm -f $$f"; rm -f "$$f"; \
	fi
	@f='$(DESTDIR)$(postern_logrotatedir)/postern'; \
	if test -f "$$f" && cmp -s "$$f" etc/postern.logrotate; then \
	  echo " rm -f $$f"; rm -f "$$f"; \
	fi

# the logrotate file and the systemd unit, with this build's paths
etc/postern.logrotate etc/postern.service: etc/%: $(top_srcdir)/etc/%.in Makefile
	$(AM_V_GEN)$(MKDIR_P) etc && $(edit_paths) $(top_srcdir)/etc/$*.in > $@

.PHONY: install-postern-conf uninstall-postern-conf

# The systemd unit (configure --with-systemdsystemunitdir=DIR, or =no for
# none).
EXTRA_DIST += etc/postern.service.in
CLEANFILES += etc/postern.service
if SYSTEMD_UNIT
systemdsystemunit_DATA = etc/postern.service
endif
