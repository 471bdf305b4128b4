//! gear installs Docker images as containers on a Linux host, each container a systemd
//! unit (`ctr-<id>.service`), driven by the `gear` CLI and by the `gear-api` HTTP agent.
//!
//! Architecture (see `docs/architecture.md`):
//! - `gear-api` is socket-activated by `gear-api.socket` (port 43273). It parses each HTTP
//!   request into an [`api::Request`], carries it out through the [`systemd::Systemd`] seam
//!   and the files under [`paths::Paths`], and may exit when idle.
//! - `gear` parses locators ([`locator`]) and sends the same [`api::Request`] values to one
//!   or many agents in parallel with [`api::Client`].
//! - systemd supervises everything; gear never daemonizes or writes PID files.

pub mod accounts;
pub mod api;
pub mod atomic_file;
pub mod build;
pub mod cli;
pub mod container;
pub mod deploy;
pub mod docker;
pub mod duration;
pub mod enter;
pub mod git;
pub mod id;
pub mod idle;
pub mod idler;
pub mod job;
pub mod json_lines;
pub mod keys;
pub mod links;
pub mod locator;
pub mod logging;
pub mod netfilter;
pub mod paths;
pub mod port;
pub mod runtime;
mod serde_str;
pub mod systemd;
pub mod tls;
pub mod unit_file;
