//! A gossip transport wrapper that counts messages and bytes.

use std::net::SocketAddr;

use async_trait::async_trait;
use chitchat::transport::{RecvOutcome, SendOutcome, Socket, Transport};
use chitchat::ChitchatEnvelope;
use metrics::counter;

use super::metrics::{GOSSIP_BYTES_TOTAL, GOSSIP_MESSAGES_TOTAL};

pub struct MeteredTransport<T>(pub T);

#[async_trait]
impl<T: Transport> Transport for MeteredTransport<T> {
    async fn open(&self, listen_addr: SocketAddr) -> anyhow::Result<Box<dyn Socket>> {
        Ok(Box::new(MeteredSocket(self.0.open(listen_addr).await?)))
    }
}

struct MeteredSocket(Box<dyn Socket>);

#[async_trait]
impl Socket for MeteredSocket {
    fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        self.0.local_addr()
    }

    async fn send(
        &mut self,
        to: SocketAddr,
        envelope: ChitchatEnvelope,
    ) -> anyhow::Result<SendOutcome> {
        let out = self.0.send(to, envelope).await?;
        counter!(GOSSIP_MESSAGES_TOTAL, "direction" => "sent").increment(1);
        counter!(GOSSIP_BYTES_TOTAL, "direction" => "sent").increment(out.num_bytes_sent as u64);
        Ok(out)
    }

    async fn recv(&mut self) -> anyhow::Result<RecvOutcome> {
        let out = self.0.recv().await?;
        counter!(GOSSIP_MESSAGES_TOTAL, "direction" => "received").increment(1);
        counter!(GOSSIP_BYTES_TOTAL, "direction" => "received")
            .increment(out.num_bytes_received as u64);
        Ok(out)
    }
}
