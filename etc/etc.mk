# etc/etc.mk - the example configuration.  `make install` puts it in
# $(sysconfdir)/postern/ unless a postern.conf is there already (an
# administrator's file is never overwritten); `make uninstall` removes it
# only if it is still the unchanged example.
EXTRA_DIST += etc/postern.conf

postern_confdir = $(sysconfdir)/postern

install-data-local: install-postern-conf
install-postern-conf:
	$(MKDIR_P) '$(DESTDIR)$(postern_confdir)'
	@if test -f '$(DESTDIR)$(postern_confdir)/postern.conf'; then \
	  echo "keeping the existing $(DESTDIR)$(postern_confdir)/postern.conf"; \
	else \
	  echo " install etc/postern.conf $(DESTDIR)$(postern_confdir)"; \
	  $(INSTALL_DATA) '$(srcdir)/etc/postern.conf' \
	    '$(DESTDIR)$(postern_confdir)/postern.conf'; \
	fi

uninstall-local: uninstall-postern-conf
uninstall-postern-conf:
	@f='$(DESTDIR)$(postern_confdir)/postern.conf'; \
	if test -f "$$f" && cmp -s "$$f" '$(srcdir)/etc/postern.conf'; then \
	  echo " rm -f $$f"; rm -f "$$f"; \
	fi

.PHONY: install-postern-conf uninstall-postern-conf

# The systemd unit, with this build's paths (configure
# --with-systemdsystemunitdir=DIR, or =no for none).
EXTRA_DIST += etc/postern.service.in
CLEANFILES += etc/postern.service
if SYSTEMD_UNIT
systemdsystemunit_DATA = etc/postern.service
endif
etc/postern.service: $(top_srcdir)/etc/postern.service.in Makefile
	$(AM_V_GEN)$(MKDIR_P) etc && sed \
	    -e 's|[@]sbindir[@]|$(sbindir)|g' \
	    -e 's|[@]sysconfdir[@]|$(sysconfdir)|g' \
	    -e 's|[@]systemdsystemunitdir[@]|$(systemdsystemunitdir)|g' \
	    $(top_srcdir)/etc/postern.service.in > $@
