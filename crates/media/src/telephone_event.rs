//! RFC 4733 telephone-events (DTMF): payload, receiver and sender. Work in progress.
