//! The per-packet paths allocate nothing: `Playout::tick` (and `Recorder::push`) run with a
//! counting global allocator. One test in this binary, so no other thread allocates meanwhile.

use std::alloc::System;
use std::sync::Arc;
use std::time::Duration;

use media::g711::Law;
use media::prompt::tone;
use media::{Playout, Recorder, RecorderConfig};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

#[test]
fn playout_tick_and_recorder_push_allocate_nothing() {
    let welcome = Arc::new(tone(440.0, 1000, -10.0));
    let menu = Arc::new(tone(660.0, 500, -10.0));
    let music = Arc::new(tone(330.0, 700, -10.0));
    let mut playout = Playout::new(0x1234, 0, 0, Law::Pcmu, 0);
    let mut recorder = Recorder::new(RecorderConfig::default());
    let mut buf = [0u8; 172];
    let speech = tone(1000.0, 20, -12.0);
    let frame: [i16; 160] = speech.pcm().try_into().expect("160 samples");

    playout.play(vec![welcome.clone(), menu.clone()]);
    let region = Region::new(GLOBAL);
    let mut sent = 0;
    let mut bytes = 0u64;
    for _ in 0..200 {
        if let Some(n) = playout.tick(&mut buf) {
            sent += 1;
            bytes += u64::from(buf[n - 1]);
        }
        let _ = playout.take_finished();
        let _ = recorder.push(&frame);
    }
    let one_shot = region.change();
    assert_eq!(sent, 75, "1.5 s of prompts, then silence");
    assert!(bytes > 0);

    playout.play_looped(music, Some(menu), Duration::from_millis(300));
    playout.set_law(Law::Pcma, 8);
    let region = Region::new(GLOBAL);
    for _ in 0..500 {
        assert_eq!(playout.tick(&mut buf), Some(172));
    }
    let looped = region.change();

    assert_eq!(
        (one_shot.allocations, one_shot.reallocations),
        (0, 0),
        "play: {one_shot:?}"
    );
    assert_eq!(
        (looped.allocations, looped.reallocations),
        (0, 0),
        "looped: {looped:?}"
    );
}
