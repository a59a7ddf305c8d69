//! Who may do what: the canister's controllers hold every role; operators hold the roles an
//! admin granted them. The anonymous principal holds none, whatever is stored.

use candid::Principal;
use fleet_api::manager::{Operator, Role};
use ic_stable_structures::{Memory, StableBTreeMap};

fn bit(role: Role) -> u8 {
    match role {
        Role::Admin => 1,
        Role::Releaser => 2,
        Role::Deployer => 4,
    }
}

const ALL_ROLES: [Role; 3] = [Role::Admin, Role::Releaser, Role::Deployer];

pub fn roles_from_bits(bits: u8) -> Vec<Role> {
    ALL_ROLES
        .into_iter()
        .filter(|r| bits & bit(*r) != 0)
        .collect()
}

pub fn bits_from_roles(roles: &[Role]) -> u8 {
    roles.iter().fold(0, |acc, r| acc | bit(*r))
}

/// The caller as the checks see it: its principal and whether it controls this canister
/// (`ic0.is_controller`, interface spec "Controller check").
#[derive(Clone, Copy, Debug)]
pub struct Caller {
    pub principal: Principal,
    pub is_controller: bool,
}

pub struct Operators<M: Memory> {
    map: StableBTreeMap<Principal, u8, M>,
}

impl<M: Memory> Operators<M> {
    pub fn init(memory: M) -> Self {
        Operators {
            map: StableBTreeMap::init(memory),
        }
    }

    pub fn has_role(&self, caller: Caller, role: Role) -> bool {
        if caller.principal == Principal::anonymous() {
            return false;
        }
        caller.is_controller
            || self
                .map
                .get(&caller.principal)
                .is_some_and(|bits| bits & bit(role) != 0)
    }

    /// Whether the caller holds any role: may read operator-only queries.
    pub fn is_operator(&self, caller: Caller) -> bool {
        ALL_ROLES.into_iter().any(|r| self.has_role(caller, r))
    }

    /// Replaces the roles of `principal`. The caller's authority is checked by the endpoint.
    pub fn set(&mut self, principal: Principal, roles: &[Role]) {
        self.map.insert(principal, bits_from_roles(roles));
    }

    pub fn remove(&mut self, principal: &Principal) -> bool {
        self.map.remove(principal).is_some()
    }

    pub fn list(&self) -> Vec<Operator> {
        self.map
            .iter()
            .map(|e| Operator {
                principal: *e.key(),
                roles: roles_from_bits(e.value()),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ic_stable_structures::VectorMemory;

    fn p(n: u8) -> Principal {
        Principal::from_slice(&[n; 10])
    }

    fn caller(principal: Principal, is_controller: bool) -> Caller {
        Caller {
            principal,
            is_controller,
        }
    }

    #[test]
    fn operators_hold_exactly_their_roles_and_controllers_hold_all() {
        let mut ops = Operators::init(VectorMemory::default());
        ops.set(p(1), &[Role::Releaser]);
        assert!(ops.has_role(caller(p(1), false), Role::Releaser));
        assert!(!ops.has_role(caller(p(1), false), Role::Admin));
        assert!(!ops.has_role(caller(p(1), false), Role::Deployer));
        assert!(!ops.has_role(caller(p(2), false), Role::Releaser));
        assert!(ops.has_role(caller(p(2), true), Role::Admin));
        assert!(ops.is_operator(caller(p(1), false)));
        assert!(!ops.is_operator(caller(p(2), false)));
    }

    #[test]
    fn anonymous_holds_no_role_even_if_stored_or_controller() {
        let mut ops = Operators::init(VectorMemory::default());
        ops.set(Principal::anonymous(), &[Role::Admin]);
        assert!(!ops.has_role(caller(Principal::anonymous(), true), Role::Admin));
        assert!(!ops.is_operator(caller(Principal::anonymous(), false)));
    }

    #[test]
    fn set_replaces_roles_and_remove_revokes() {
        let mut ops = Operators::init(VectorMemory::default());
        ops.set(p(1), &[Role::Admin, Role::Deployer]);
        assert_eq!(
            ops.list(),
            vec![Operator {
                principal: p(1),
                roles: vec![Role::Admin, Role::Deployer]
            }]
        );
        ops.set(p(1), &[Role::Releaser]);
        assert!(!ops.has_role(caller(p(1), false), Role::Admin));
        assert!(ops.remove(&p(1)));
        assert!(!ops.remove(&p(1)));
        assert!(!ops.is_operator(caller(p(1), false)));
    }
}

/// Who may send an update method of the manager as an ingress message: checked by the
/// manager's `canister_inspect_message`, so that a message its handler would refuse for its
/// caller is dropped before the manager pays for it (interface spec, "Ingress message
/// inspection"). The handlers check again: inspection runs on one replica, unreplicated, and
/// does not see calls from canisters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IngressRule {
    /// Any caller but the anonymous principal: the handler decides by ownership.
    Identified,
    /// A caller holding one of these roles (controllers hold them all).
    AnyRole(&'static [Role]),
}

/// The rule for each update method of the manager; `None` for a query (it may be sent as an
/// update; its handler answers anyone) and for a name the manager does not declare.
pub fn ingress_rule(method: &str) -> Option<IngressRule> {
    use IngressRule::*;
    const ADMIN: &[Role] = &[Role::Admin];
    const RELEASER: &[Role] = &[Role::Releaser];
    const DEPLOYER: &[Role] = &[Role::Deployer];
    const ADMIN_OR_DEPLOYER: &[Role] = &[Role::Admin, Role::Deployer];
    const ANY: &[Role] = &[Role::Admin, Role::Releaser, Role::Deployer];
    Some(match method {
        "update_settings"
        | "set_operator"
        | "remove_operator"
        | "set_default_release"
        | "set_admission"
        | "update_allowlist"
        | "set_release_policy"
        | "shorten_notice"
        | "manage_canister"
        | "add_subnet"
        | "set_placement"
        | "set_store_module"
        | "upgrade_stores" => AnyRole(ADMIN),
        // The handler checks the request's own role; cancelling is also the proposer's.
        "approve_request" | "cancel_request" => AnyRole(ANY),
        "begin_release"
        | "upload_release_chunk"
        | "abort_release_upload"
        | "finalize_release"
        | "mirror_release"
        | "delete_release" => AnyRole(RELEASER),
        "start_rollout" | "pause_rollout" | "resume_rollout" | "abort_rollout" | "rollback" => {
            AnyRole(DEPLOYER)
        }
        "drain" | "end_drain" => AnyRole(ADMIN_OR_DEPLOYER),
        "create_user_canister" | "adopt_canister" | "set_upgrade_policy" | "request_upgrade" => {
            Identified
        }
        _ => return None,
    })
}

impl IngressRule {
    /// Whether `caller` passes, `has_role` telling its roles.
    pub fn admits(self, caller: Caller, has_role: impl Fn(Role) -> bool) -> bool {
        if caller.principal == Principal::anonymous() {
            return false;
        }
        match self {
            IngressRule::Identified => true,
            IngressRule::AnyRole(roles) => roles.iter().any(|r| has_role(*r)),
        }
    }
}

#[cfg(test)]
mod ingress_tests {
    use super::*;
    use fleet_api::endpoint::CallKind;

    /// Every update the manager declares has a rule, and no query has one: a new update
    /// method cannot reach the manager's inspection without a decision about who may send it.
    #[test]
    fn every_update_method_has_an_ingress_rule_and_no_query_has_one() {
        let methods = fleet_api::manager::method::METHODS
            .iter()
            .chain(fleet_api::rollout::method::METHODS)
            .chain(fleet_api::governance::method::METHODS);
        for (name, kind) in methods {
            match kind {
                CallKind::Update => assert!(ingress_rule(name).is_some(), "{name}"),
                CallKind::Query => assert_eq!(ingress_rule(name), None, "{name}"),
            }
        }
        assert_eq!(ingress_rule("no_such_method"), None);
    }

    #[test]
    fn the_anonymous_principal_is_never_admitted_and_roles_are_checked() {
        let anonymous = Caller {
            principal: Principal::anonymous(),
            is_controller: true,
        };
        let someone = Caller {
            principal: Principal::from_slice(&[7; 29]),
            is_controller: false,
        };
        for rule in [
            IngressRule::Identified,
            IngressRule::AnyRole(&[Role::Admin]),
        ] {
            assert!(!rule.admits(anonymous, |_| true));
        }
        assert!(IngressRule::Identified.admits(someone, |_| false));
        let drain = ingress_rule("drain").unwrap();
        assert!(!drain.admits(someone, |r| r == Role::Releaser));
        assert!(drain.admits(someone, |r| r == Role::Deployer));
        assert!(drain.admits(someone, |r| r == Role::Admin));
    }
}
