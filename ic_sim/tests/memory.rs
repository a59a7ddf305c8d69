//! What the simulator holds as canisters and messages accumulate: completed ingress statuses are
//! forgotten after the IC's retention time.

mod common;

use candid::{encode_args, encode_one, Principal};
use ic_sim::ErrorCode;
use std::time::Duration;

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
