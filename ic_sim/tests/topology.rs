//! The topology in pocket-ic's shapes (`topology`, `get_subnet`, `create_canister_on_subnet`):
//! one application subnet holding every canister (interface spec, "IC method subnet_info" and
//! "The system state tree" name subnets by id), creation on a named subnet, and a clear refusal
//! of topologies the simulator does not model yet (several subnets: `subnets.rs`).

use candid::Principal;
use ic_sim::{ErrorCode, IcSim, IcSimBuilder, RejectCode, SubnetInstructionConfig, SubnetKind};

/// `topology()` lists the one application subnet, and its ranges place every canister the
/// simulator creates on the subnet `get_subnet` names.
#[test]
fn the_topology_lists_the_subnet_of_every_canister() {
    let pic = IcSim::new();
    let a = pic.create_canister();
    let b = pic.create_canister();
    let subnet = pic.get_subnet(a).expect("a canister is on a subnet");
    let topology = pic.topology();
    assert_eq!(topology.subnet_configs.len(), 1);
    let config = &topology.subnet_configs[&subnet];
    assert_eq!(config.subnet_kind, SubnetKind::Application);
    assert_eq!(
        config.instruction_config,
        SubnetInstructionConfig::Production
    );
    assert_eq!(topology.get_app_subnets(), vec![subnet]);
    assert_eq!(topology.get_nns(), None);
    for canister in [a, b] {
        assert_eq!(topology.get_subnet(canister), Some(subnet));
        assert_eq!(pic.get_subnet(canister), Some(subnet));
    }
    let default: Principal = topology.default_effective_canister_id.clone().into();
    assert_eq!(topology.get_subnet(default), Some(subnet));
}

/// `create_canister_on_subnet` creates the canister on the named subnet, with the given
/// settings.
#[test]
fn a_canister_is_created_on_the_named_subnet() {
    let pic = IcSim::new();
    let subnet = pic.topology().get_app_subnets()[0];
    let owner = Principal::from_slice(&[7; 29]);
    let c = pic.create_canister_on_subnet(Some(owner), None, subnet);
    assert!(pic.canister_exists(c));
    assert_eq!(pic.get_subnet(c), Some(subnet));
    assert_eq!(pic.get_controllers(c), vec![owner]);
}

/// An unknown subnet is refused with SubnetNotFound (IC0404, CANISTER_REJECT) and nothing
/// is created; pocket-ic's own signature panics, as pocket-ic does.
#[test]
fn an_unknown_subnet_is_refused() {
    let pic = IcSim::new();
    pic.create_canister();
    let unknown = Principal::from_slice(&[1; 29]);
    let err = pic
        .try_create_canister_on_subnet(None, None, unknown)
        .unwrap_err();
    assert_eq!(err.error_code, ErrorCode::SubnetNotFound);
    assert_eq!(err.reject_code, RejectCode::CanisterReject);
    assert!(err.reject_message.contains(&unknown.to_text()), "{err}");
    assert_eq!(pic.canister_count(), 1);
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        pic.create_canister_on_subnet(None, None, unknown)
    }));
    assert!(panicked.is_err());
    assert_eq!(pic.canister_count(), 1);
}

/// Up to `MAX_APPLICATION_SUBNETS` application subnets build; more, or a subnet of another kind,
/// are refused at build time with an error naming what is not supported.
#[test]
fn only_application_subnets_build() {
    let pic = IcSimBuilder::new().with_application_subnet().build();
    assert_eq!(pic.topology().get_app_subnets().len(), 1);

    let pic = IcSimBuilder::new()
        .with_application_subnet()
        .with_application_subnet()
        .build();
    assert_eq!(pic.topology().get_app_subnets().len(), 2);

    let mut builder = IcSimBuilder::new();
    for _ in 0..=ic_sim::MAX_APPLICATION_SUBNETS {
        builder = builder.with_application_subnet();
    }
    let err = builder.try_build().err().expect("too many subnets");
    assert!(err.contains("at most"), "{err}");

    let err = IcSimBuilder::new()
        .with_nns_subnet()
        .try_build()
        .err()
        .expect("an NNS subnet is refused");
    assert!(err.contains("NNS"), "{err}");
}
