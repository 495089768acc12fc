//! `aim-faults corruptspool`: a damaged spool replayed after a restart.

use aim_local_pg::ShutdownMode;
use anyhow::{Context, ensure};
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::harness::http::drained;
use crate::harness::oracle::{fault_id, stored_ids};
use crate::harness::report::{drain_text, mark, mib};
use crate::harness::suite::{Suite, finish, finish_suite, report, start_load};
use aim_pipeline::stats::names;

pub(crate) const SUMMARY: &str = "a damaged spool replayed after a restart";

/// What [`damage_spool`] did: the request ids in the frames it broke, and how many frames.
pub(crate) struct Damage {
    pub(crate) ids: HashSet<u64>,
    pub(crate) frames: u64,
    pub(crate) segments: usize,
    pub(crate) frames_left_whole: usize,
}

/// A whole frame of a segment: its offset, its length, and the request ids of its calls.
pub(crate) type SpooledFrame = (usize, usize, Vec<u64>);

/// Breaks a stopped service's spool: flips a payload byte of the first segment's second frame
/// (its checksum fails) and cuts the last segment in the middle of its last frame (a torn
/// write). Returns what those frames held, read before breaking them.
pub(crate) fn damage_spool(dir: &std::path::Path) -> anyhow::Result<Damage> {
    use aim_pipeline::spool::frame::{self, Decoded, HEADER_BYTES};
    let mut segments: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let path = e.path();
            let sequence = path
                .file_name()?
                .to_str()?
                .strip_suffix(".seg")?
                .parse()
                .ok()?;
            Some((sequence, path))
        })
        .collect();
    segments.sort();
    let mut frames: Vec<(PathBuf, Vec<SpooledFrame>)> = Vec::new();
    for (_, path) in &segments {
        let bytes = std::fs::read(path)?;
        let mut found = Vec::new();
        let mut at = 0;
        while at < bytes.len() {
            match frame::decode(&bytes[at..]) {
                Decoded::Frame { batch, consumed } => {
                    let ids = batch
                        .rows
                        .iter()
                        .filter_map(|r| fault_id(r.request_id.as_deref()?))
                        .collect();
                    found.push((at, consumed, ids));
                    at += consumed;
                }
                Decoded::Corrupt { consumed } => at += consumed,
                Decoded::Torn => break,
            }
        }
        frames.push((path.clone(), found));
    }
    let total: usize = frames.iter().map(|(_, f)| f.len()).sum();
    ensure!(
        total >= 3,
        "the outage left {total} spooled frames; at least 3 are needed"
    );
    let mut ids = HashSet::new();
    let (first, first_frames) = &frames[0];
    let (offset, length, batch) = &first_frames[usize::from(first_frames.len() > 1)];
    let mut bytes = std::fs::read(first)?;
    bytes[offset + HEADER_BYTES + (length - HEADER_BYTES) / 2] ^= 0x5a;
    std::fs::write(first, &bytes)?;
    ids.extend(batch);
    let (last, last_frames) = &frames[frames.len() - 1];
    let (offset, length, batch) = last_frames.last().context("a last frame")?;
    ensure!(
        !(last == first && *offset <= first_frames[1].0),
        "the last frame is the corrupted one"
    );
    let file = std::fs::OpenOptions::new().write(true).open(last)?;
    file.set_len((offset + HEADER_BYTES + (length - HEADER_BYTES) / 2) as u64)?;
    file.sync_all()?;
    ids.extend(batch);
    Ok(Damage {
        ids,
        frames: 2,
        segments: segments.len(),
        frames_left_whole: total - 2,
    })
}

/// Corrupt and truncated spool files: PostgreSQL goes down under load, the service spools, is
/// stopped, and its spool is damaged (a flipped byte in one frame, a torn last frame); then
/// PostgreSQL and the service come back. The damaged frames' events, and only they, are lost;
/// the damaged segments are quarantined and the frames counted as `spool_corrupt`; every other
/// spooled event is replayed, once.
pub(crate) async fn run(mut s: Suite) -> anyhow::Result<bool> {
    let (observed, stop, load) = start_load(&s, Duration::from_secs(60));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let cluster = &s.cluster;
    let service = &mut s.service;
    let outage = cluster.restart(ShutdownMode::Fast, Duration::from_secs(12));
    let stop_and_damage = async {
        // Spooling for about 7 s, then a clean stop: the spool is sealed on the way out.
        tokio::time::sleep(Duration::from_secs(8)).await;
        service.signal(nix::sys::signal::Signal::SIGTERM)?;
        service.wait().await?;
        damage_spool(&service.data_dir.join("spool"))
    };
    let (restarted, damage) = tokio::join!(outage, stop_and_damage);
    restarted?;
    let damage = damage?;
    println!(
        "spool damaged: 2 of {} frames in {} segment(s), holding {} calls",
        damage.frames_left_whole + 2,
        damage.segments,
        damage.ids.len()
    );
    let recovered_in = s.service.start(&s.http).await?;
    tokio::time::sleep(Duration::from_secs(8)).await;
    stop.store(true, Ordering::Relaxed);
    load.await?;
    let observed = finish(&observed).await;
    let drain = drained(&s.http, s.service.metrics_port, Duration::from_secs(60)).await;
    let corrupt = s
        .metric_labelled(names::EVENTS_DROPPED_TOTAL, "spool_corrupt")
        .await?;
    let quarantined = std::fs::read_dir(s.service.data_dir.join("spool/quarantine"))
        .map_or(0, |d| d.filter_map(Result::ok).count());
    let stored = stored_ids(&s.service.database_url).await?;
    let answered: HashSet<u64> = observed.answered.iter().copied().collect();
    let lost: HashSet<u64> = answered
        .iter()
        .filter(|id| !stored.contains_key(id))
        .copied()
        .collect();
    let expected: HashSet<u64> = damage.ids.intersection(&answered).copied().collect();
    let replayed_damaged = damage
        .ids
        .iter()
        .filter(|id| stored.contains_key(id))
        .count();
    let (_, duplicated) = report(
        &s,
        &observed,
        &[
            (
                "restart to ready, with the damaged spool",
                format!("{recovered_in:?}"),
            ),
            (
                "calls in the damaged frames (answered)",
                expected.len().to_string(),
            ),
            (
                "lost calls that were not in a damaged frame",
                lost.difference(&expected).count().to_string(),
            ),
            (
                "damaged frames' calls found in api_calls",
                replayed_damaged.to_string(),
            ),
            ("frames counted as spool_corrupt", format!("{corrupt}")),
            ("segments quarantined", quarantined.to_string()),
            ("queue and spool empty afterwards", drain_text(&drain)),
            ("peak RSS", mib(s.service.peak_rss_kib())),
        ],
    )
    .await?;
    let clean = finish_suite(s).await?;
    let exact = lost == expected && replayed_damaged == 0;
    let counted = corrupt == damage.frames as f64;
    let isolated = quarantined == if damage.segments == 1 { 1 } else { 2 };
    println!(
        "targets: only the damaged frames' calls lost {}, 0 duplicated {}, damaged frames counted {}, damaged segments quarantined {}, drained {}, rollups clean {}",
        mark(exact),
        mark(duplicated == 0),
        mark(counted),
        mark(isolated),
        mark(drain.is_ok()),
        mark(clean),
    );
    Ok(exact && duplicated == 0 && counted && isolated && drain.is_ok() && clean)
}
