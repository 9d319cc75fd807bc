# src/conf.mk
