# etc/etc.mk
