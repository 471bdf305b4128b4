//! Reading a stream of JSON values, one per line, from an HTTP body as it arrives: Docker's
//! pull progress and the agent's install progress both come this way.

use http_body_util::BodyExt as _;
use hyper::body::Incoming;

/// Calls `each` with every line of `body` as it arrives, parsed as JSON; stops at the
/// first error `each` returns. A line that is not JSON is an error.
pub async fn for_each(
    mut body: Incoming,
    mut each: impl FnMut(serde_json::Value) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut pending = Vec::new();
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame?.into_data() else {
            continue;
        };
        pending.extend_from_slice(&data);
        while let Some(end) = pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            each(
                serde_json::from_slice(&line)
                    .map_err(|e| anyhow::anyhow!("a line of the answer is not JSON: {e}"))?,
            )?;
        }
    }
    Ok(())
}
