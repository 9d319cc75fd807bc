# src/auth.mk
