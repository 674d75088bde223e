"""OMS signatures: in-toto statement, DSSE envelope, sigstore bundle, keys, signers, trust."""
