//! The trunk role: places calls into the switch, as the provider's gateway does.

use std::net::{IpAddr, SocketAddr};
use std::ops::{Deref, DerefMut};

use sip_msg::Request;

use crate::agent::{Call, UserAgent};
use crate::error::HarnessError;
use crate::transcript::Transcript;

/// A trunk gateway: trusted by the switch by source address, never authenticated. Derefs to
/// its [`UserAgent`] for the dialog operations both roles share.
#[derive(Debug)]
pub struct Trunk {
    ua: UserAgent,
    caller: String,
}

impl Deref for Trunk {
    type Target = UserAgent;
    fn deref(&self) -> &UserAgent {
        &self.ua
    }
}

impl DerefMut for Trunk {
    fn deref_mut(&mut self) -> &mut UserAgent {
        &mut self.ua
    }
}

impl Trunk {
    /// A trunk bound on `local_ip` (127.0.0.2 for the example dialplan's `provider`).
    pub async fn bind(
        local_ip: IpAddr,
        server: SocketAddr,
        domain: &str,
        transcript: &Transcript,
    ) -> Result<Trunk, HarnessError> {
        let ua = UserAgent::bind("trunk", local_ip, server, domain, transcript).await?;
        Ok(Trunk {
            ua,
            caller: "0612345678".into(),
        })
    }

    /// Sets the calling number put in From.
    pub fn set_caller(&mut self, caller: &str) {
        self.caller = caller.to_owned();
    }

    /// Sends an INVITE for `number` with an SDP offer (PCMU 0, PCMA 8, telephone-event 101)
    /// naming a freshly bound RTP socket. Returns at once; wait with [`UserAgent::wait_ringing`],
    /// [`UserAgent::wait_answer`] or [`UserAgent::wait_final`].
    pub async fn invite(&mut self, number: &str) -> Result<Call, HarnessError> {
        self.invite_with(number, |_| {}).await
    }

    /// [`Trunk::invite`], letting `edit` change the INVITE before it is sent (extra headers,
    /// another body, a Request-URI of a captured call ...). The dialog keeps what was sent.
    pub async fn invite_with(
        &mut self,
        number: &str,
        edit: impl FnOnce(&mut Request),
    ) -> Result<Call, HarnessError> {
        let host = self.ua.local_addr().ip().to_string();
        let caller = self.caller.clone();
        self.ua.place_call(number, &caller, &host, edit).await
    }
}
