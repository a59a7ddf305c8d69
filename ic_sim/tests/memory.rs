//! What the simulator holds as canisters and messages accumulate: equal pages are held once, and
//! completed ingress statuses are forgotten after the IC's retention time.

mod common;

use candid::{encode_args, encode_one, Principal};
use ic_sim::{update_candid, ErrorCode};
use std::time::Duration;

#[test]
fn canisters_writing_the_same_content_share_its_pages() {
    let pic = ic_sim::IcSimBuilder::new().with_logs(false).build();
    let n = 10;
    let ids: Vec<Principal> = (0..n).map(|_| common::install(&pic)).collect();
    let before = pic.memory_report();
    // 64 KiB of one pattern: 16 pages, each different from the others.
    let data: Vec<u8> = (0..65_536u32).map(|i| (i % 251) as u8 + 1).collect();
    for id in &ids {
        let () = update_candid(&pic, *id, "stable_put", (0u64, data.clone())).unwrap();
    }
    let after = pic.memory_report();
    assert_eq!(after.stable_pages - before.stable_pages, 16 * n);
    // The canisters' 160 stable pages take 16 distinct pages; their heaps may add their own.
    let new_distinct = after.distinct_pages - before.distinct_pages;
    let new_heap = after.heap_pages.saturating_sub(before.heap_pages);
    assert!(
        new_distinct <= 16 + new_heap,
        "{new_distinct} distinct pages for 160 equal stable pages and {new_heap} heap pages"
    );
    assert_eq!(after.distinct_pages, after.distinct_contents);
}

#[test]
fn completed_ingress_statuses_expire_after_five_minutes_and_read_as_done() {
    let pic = ic_sim::IcSimBuilder::new().with_logs(false).build();
    let id = common::install(&pic);
    let msg = pic
        .submit_call(id, Principal::anonymous(), "inc", encode_args(()).unwrap())
        .unwrap();
    pic.tick();
    let reply = pic
        .ingress_status(&msg)
        .expect("completed")
        .expect("replied");
    assert_eq!(reply, encode_one(1u64).unwrap());
    assert_eq!(pic.memory_report().ingress_completed, 1);
    // Still readable just before the retention time ends.
    pic.advance_time(Duration::from_secs(299));
    pic.tick();
    assert!(matches!(pic.ingress_status(&msg), Some(Ok(_))));
    pic.advance_time(Duration::from_secs(1));
    pic.tick();
    let done = pic.ingress_status(&msg).expect("a done status");
    assert_eq!(
        done.unwrap_err().error_code,
        ErrorCode::IngressMessageTimeout
    );
    assert_eq!(pic.memory_report().ingress_statuses, 0);
    assert!(matches!(
        pic.await_call(msg),
        Err(r) if r.error_code == ErrorCode::IngressMessageTimeout
    ));
}
