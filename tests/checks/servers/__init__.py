"""Real servers the check tests talk to, each on 127.0.0.1 and an ephemeral port."""
