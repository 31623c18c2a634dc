//! Scripted SIP user agents for tests (phone and trunk roles, RTP send/receive).
