"""Who is asking: principals, token verification, identity issuers."""
