//! The subnets a fleet uses: the manager's own, and up to [`MAX_SUBNETS`] more, each with a
//! store canister whose IC chunk store holds the releases installed there.
//!
//! `install_chunked_code` takes chunks only from a store canister on the target's subnet,
//! and only when the caller controls it (interface spec, "IC method `install_chunked_code`"),
//! so a canister on another subnet than the manager's installs from that subnet's store, whose
//! only controller is the manager. The manager creates it through the cycles minting
//! canister's `create_canister` with a subnet selection, the IC's way to create a canister on
//! a chosen subnet (the management canister creates on the caller's own), and user canisters
//! on other subnets the same way, where the placement policy puts them. It then installs the
//! store module (`store_canister`, set by an admin with `set_store_module`, memory 30) with
//! `install_code` (the module is small enough to travel whole in one call): the store exists
//! for its chunk store, which only the manager can fill (`upload_chunk`), and its code records
//! which releases that chunk store holds (`record_release`, `forget_release`, called by the
//! mirror, [`crate::chunk_store`]), for anyone to read with its `releases` query.
//!
//! Memory 29 holds the state: the placement, the added subnets in the order they were added,
//! each with its store, its canister count and what its chunk store holds. The manager's own
//! subnet keeps its mirror state in memory 8, as before subnets were added, and its canister
//! count is the registry's size less the others'.

use crate::chunk_store::{self, MirrorState};
use crate::memory::StoredShape;
use crate::runtime::{bad_reply, CallError, CallResult, Runtime};
use crate::state;
use crate::stored::MirroredRelease;
use candid::{CandidType, Decode, Encode, Nat, Principal};
use fleet_api::manager::{
    AddSubnetArg, Placement as ApiPlacement, SetStoreModuleError, StoreUpgrade,
    StoreUpgradeOutcome, SubnetError, SubnetInfo, SubnetsView, MAX_STORE_MODULE_SIZE, MAX_SUBNETS,
};
use fleet_api::store_canister::StoreInit;
use ic_management_canister_types::CanisterInstallMode;
use ic_stable_structures::Memory;
use rollout_core::codec::COMPACT_V1;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The cycles minting canister (`rkp4c-7iaaa-aaaaa-aaaca-cai`).
pub const CMC: Principal = Principal::from_slice(&[0, 0, 0, 0, 0, 0, 0, 4, 1, 1]);

/// Where new canisters go (the manager's own type of [`ApiPlacement`]).
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub enum Placement {
    #[default]
    OwnSubnet,
    Fill {
        max_per_subnet: u64,
    },
    Spread,
    Subnet(Principal),
}

/// An added subnet and its store.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct SubnetStore {
    pub subnet: Principal,
    pub store: Principal,
    /// Registered canisters on the subnet.
    pub canisters: u64,
    pub mirror: MirrorState,
}

/// Memory 29.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct SubnetsState {
    pub placement: Placement,
    /// In the order they were added.
    pub subnets: Vec<SubnetStore>,
}

impl StoredShape for SubnetsState {
    const TAG: u8 = COMPACT_V1;
}

/// Memory 30: the store module, read and written as raw bytes: its length (8 bytes, little
/// endian; 0 when none is set), its sha256 (32 bytes), the module. The hash is read without
/// the module, which is read only when a store is installed.
pub struct StoreModule<M: Memory> {
    memory: M,
}

const STORE_MODULE_HEADER: u64 = 8 + 32;
const WASM_PAGE: u64 = 65536;

impl<M: Memory> StoreModule<M> {
    pub fn init(memory: M) -> Self {
        StoreModule { memory }
    }

    fn len(&self) -> u64 {
        if self.memory.size() == 0 {
            return 0;
        }
        let mut len = [0; 8];
        self.memory.read(0, &mut len);
        u64::from_le_bytes(len)
    }

    /// The module's sha256, if one is set.
    pub fn hash(&self) -> Option<Vec<u8>> {
        (self.len() > 0).then(|| {
            let mut hash = vec![0; 32];
            self.memory.read(8, &mut hash);
            hash
        })
    }

    pub fn module(&self) -> Option<Vec<u8>> {
        let len = self.len();
        (len > 0).then(|| {
            let mut module = vec![0; len as usize];
            self.memory.read(STORE_MODULE_HEADER, &mut module);
            module
        })
    }

    /// Replaces the module (the caller has checked it); returns its sha256.
    pub fn set(&mut self, module: &[u8]) -> Vec<u8> {
        let hash = Sha256::digest(module).to_vec();
        let end = STORE_MODULE_HEADER + module.len() as u64;
        let pages = end.div_ceil(WASM_PAGE);
        if self.memory.size() < pages {
            assert!(
                self.memory.grow(pages - self.memory.size()) >= 0,
                "stable memory cannot grow for the store module"
            );
        }
        // The length last: a module half written is never read as whole.
        self.memory.write(0, &0u64.to_le_bytes());
        self.memory.write(8, &hash);
        self.memory.write(STORE_MODULE_HEADER, module);
        self.memory.write(0, &(module.len() as u64).to_le_bytes());
        hash
    }
}

/// Sets the module `add_subnet` installs in new store canisters: wasm, or gzipped wasm (which
/// `install_code` takes too; interface spec, "IC method `install_code`"), at most
/// [`MAX_STORE_MODULE_SIZE`]. Returns its sha256. Stores already installed keep theirs. The
/// caller's role is checked by the endpoint.
pub fn set_store_module(module: &[u8]) -> Result<Vec<u8>, SetStoreModuleError> {
    const WASM_MAGIC: &[u8] = b"\0asm";
    const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
    if module.len() as u64 > MAX_STORE_MODULE_SIZE {
        return Err(SetStoreModuleError::TooLarge {
            size: module.len() as u64,
            max: MAX_STORE_MODULE_SIZE,
        });
    }
    if !module.starts_with(WASM_MAGIC) && !module.starts_with(GZIP_MAGIC) {
        return Err(SetStoreModuleError::NotWasm);
    }
    Ok(state::with_mut(|s| s.store_module.set(module)))
}

/// The sha256 of the store module, if one is set.
pub fn store_module_hash() -> Option<Vec<u8>> {
    state::with(|s| s.store_module.hash())
}

/// A chunk store: the manager's own (`own`), or an added subnet's store canister.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreRef {
    pub subnet: Principal,
    pub canister: Principal,
    pub own: bool,
}

pub fn own_store<R: Runtime>(rt: &R) -> StoreRef {
    StoreRef {
        subnet: rt.subnet_self(),
        canister: rt.self_id(),
        own: true,
    }
}

/// The store of `subnet` (`None`: a record from before subnets were recorded, on the
/// manager's own subnet), or `None` when the manager does not use that subnet.
pub fn store_of<R: Runtime>(rt: &R, subnet: Option<Principal>) -> Option<StoreRef> {
    let own = rt.subnet_self();
    match subnet {
        None => Some(own_store(rt)),
        Some(s) if s == own => Some(own_store(rt)),
        Some(s) => state::with(|st| {
            st.with_subnets(|st| {
                st.subnets.iter().find(|e| e.subnet == s).map(|e| StoreRef {
                    subnet: e.subnet,
                    canister: e.store,
                    own: false,
                })
            })
        }),
    }
}

/// A registry record's subnet as rollouts group canisters: an added subnet, or `None` for the
/// manager's own (which records of every age may name either way).
pub fn rollout_subnet(subnet: Option<Principal>) -> Option<Principal> {
    let subnet = subnet?;
    state::with(|s| s.with_subnets(|st| st.subnets.iter().any(|e| e.subnet == subnet)))
        .then_some(subnet)
}

/// What the chunk store of a registry record's subnet holds.
pub fn mirror_for(subnet: Option<Principal>) -> MirrorState {
    match rollout_subnet(subnet) {
        None => state::with(|s| s.mirror_state()),
        Some(subnet) => state::with(|s| {
            s.with_subnets(|st| {
                st.subnets
                    .iter()
                    .find(|e| e.subnet == subnet)
                    .map(|e| e.mirror.clone())
                    .unwrap_or_default()
            })
        }),
    }
}

/// Every store the fleet uses, the manager's own first.
pub fn all_stores<R: Runtime>(rt: &R) -> Vec<StoreRef> {
    let mut stores = vec![own_store(rt)];
    stores.extend(
        state::with(|s| s.subnets_state())
            .subnets
            .into_iter()
            .map(|e| StoreRef {
                subnet: e.subnet,
                canister: e.store,
                own: false,
            }),
    );
    stores
}

pub fn mirror_of(store: &StoreRef) -> MirrorState {
    state::with(|s| {
        if store.own {
            s.mirror_state()
        } else {
            s.with_subnets(|st| {
                st.subnets
                    .iter()
                    .find(|e| e.canister_is(store))
                    .map(|e| e.mirror.clone())
                    .unwrap_or_default()
            })
        }
    })
}

/// The chunk hashes of release `sha256` in `store`, if mirrored there, without copying the
/// rest of the store's state (read at every install).
pub fn mirrored_in(store: &StoreRef, sha256: &[u8]) -> Option<MirroredRelease> {
    state::with(|s| {
        if store.own {
            s.mirror.get().0.get(sha256).cloned()
        } else {
            s.with_subnets(|st| {
                st.subnets
                    .iter()
                    .find(|e| e.canister_is(store))
                    .and_then(|e| e.mirror.get(sha256).cloned())
            })
        }
    })
}

pub fn set_mirror_of(store: &StoreRef, mirror: MirrorState) {
    state::with_mut(|s| {
        if store.own {
            s.set_mirror_state(mirror);
        } else {
            let mut st = s.subnets_state();
            if let Some(e) = st.subnets.iter_mut().find(|e| e.canister_is(store)) {
                e.mirror = mirror;
                s.set_subnets_state(st);
            }
        }
    })
}

impl SubnetStore {
    fn canister_is(&self, store: &StoreRef) -> bool {
        self.store == store.canister
    }
}

/// Counts a canister registered on `subnet` (for the placement).
pub fn count_registered<R: Runtime>(rt: &R, subnet: Principal) {
    if subnet == rt.subnet_self() {
        return;
    }
    state::with_mut(|s| {
        let mut st = s.subnets_state();
        if let Some(e) = st.subnets.iter_mut().find(|e| e.subnet == subnet) {
            e.canisters += 1;
            s.set_subnets_state(st);
        }
    })
}

thread_local! {
    /// Creations placed on each subnet and not yet registered: concurrent creations see each
    /// other's choice, so that `Spread` and `Fill` hold while hundreds are in progress.
    static PLACING: std::cell::RefCell<std::collections::BTreeMap<Principal, u64>> =
        const { std::cell::RefCell::new(std::collections::BTreeMap::new()) };
}

/// A creation placed on a subnet, counted there until it is dropped (registered or failed).
pub struct Placed {
    pub subnet: Principal,
}

impl Drop for Placed {
    fn drop(&mut self) {
        PLACING.with(|p| {
            let mut p = p.borrow_mut();
            if let Some(n) = p.get_mut(&self.subnet) {
                *n -= 1;
                if *n == 0 {
                    p.remove(&self.subnet);
                }
            }
        })
    }
}

/// Canisters on each subnet the fleet uses, the manager's own first.
fn counts<R: Runtime>(rt: &R) -> Vec<(Principal, u64)> {
    let (total, st) = state::with(|s| (s.registry.len(), s.subnets_state()));
    let others: u64 = st.subnets.iter().map(|e| e.canisters).sum();
    let mut counts = vec![(rt.subnet_self(), total.saturating_sub(others))];
    counts.extend(st.subnets.iter().map(|e| (e.subnet, e.canisters)));
    counts
}

/// Places the next canister by the placement policy, counting creations in progress; `None`
/// when every subnet is full under `Fill`.
pub fn place<R: Runtime>(rt: &R) -> Option<Placed> {
    let subnet = choose(rt)?;
    PLACING.with(|p| *p.borrow_mut().entry(subnet).or_insert(0) += 1);
    Some(Placed { subnet })
}

fn choose<R: Runtime>(rt: &R) -> Option<Principal> {
    let placement = state::with(|s| s.with_subnets(|st| st.placement.clone()));
    let placing = PLACING.with(|p| p.borrow().clone());
    let counts: Vec<(Principal, u64)> = counts(rt)
        .into_iter()
        .map(|(s, n)| (s, n + placing.get(&s).copied().unwrap_or(0)))
        .collect();
    match placement {
        Placement::OwnSubnet => Some(rt.subnet_self()),
        Placement::Subnet(s) => Some(s),
        Placement::Fill { max_per_subnet } => counts
            .iter()
            .find(|(_, n)| *n < max_per_subnet)
            .map(|(s, _)| *s),
        Placement::Spread => counts
            .iter()
            .enumerate()
            .min_by_key(|(i, (_, n))| (*n, *i))
            .map(|(_, (s, _))| *s),
    }
}

pub fn view<R: Runtime>(rt: &R) -> SubnetsView {
    let busy = state::MirrorGuard::busy();
    let st = state::with(|s| s.subnets_state());
    let subnets = all_stores(rt)
        .into_iter()
        .zip(counts(rt))
        .map(|(store, (_, canisters))| SubnetInfo {
            subnet: store.subnet,
            store: store.canister,
            own: store.own,
            canisters,
            chunk_store: mirror_of(&store).status(busy),
        })
        .collect();
    SubnetsView {
        placement: to_api(st.placement),
        subnets,
    }
}

fn to_api(p: Placement) -> ApiPlacement {
    match p {
        Placement::OwnSubnet => ApiPlacement::OwnSubnet,
        Placement::Fill { max_per_subnet } => ApiPlacement::Fill { max_per_subnet },
        Placement::Spread => ApiPlacement::Spread,
        Placement::Subnet(s) => ApiPlacement::Subnet(s),
    }
}

/// Sets the placement; a named subnet must be one the fleet uses. The caller's role is
/// checked by the endpoint.
pub fn set_placement<R: Runtime>(
    rt: &R,
    placement: ApiPlacement,
) -> Result<SubnetsView, SubnetError> {
    let placement = match placement {
        ApiPlacement::OwnSubnet => Placement::OwnSubnet,
        ApiPlacement::Spread => Placement::Spread,
        ApiPlacement::Fill { max_per_subnet: 0 } => {
            return Err(SubnetError::InvalidPlacement(
                "Fill needs a limit of at least 1 canister per subnet".into(),
            ))
        }
        ApiPlacement::Fill { max_per_subnet } => Placement::Fill { max_per_subnet },
        ApiPlacement::Subnet(s) => {
            if store_of(rt, Some(s)).is_none() {
                return Err(SubnetError::UnknownSubnet(s));
            }
            Placement::Subnet(s)
        }
    };
    state::with_mut(|s| {
        let mut st = s.subnets_state();
        st.placement = placement;
        s.set_subnets_state(st);
    });
    Ok(view(rt))
}

/// Adds `arg.subnet`: creates its store canister there through the CMC (controlled by the
/// manager alone), installs the store module in it, records it, and mirrors the releases still
/// needed into it. Without a store module nothing is created. The caller's role is checked by
/// the endpoint.
pub async fn add_subnet<R: Runtime>(rt: &R, arg: AddSubnetArg) -> Result<SubnetInfo, SubnetError> {
    let known = |subnet| store_of(rt, Some(subnet)).is_some();
    if known(arg.subnet) {
        return Err(SubnetError::AlreadyAdded);
    }
    let Some(_adding) = Adding::claim(arg.subnet) else {
        return Err(SubnetError::AlreadyAdded);
    };
    let adding_others = ADDING.with(|a| a.borrow().len()) - 1;
    if state::with(|s| s.subnets_state()).subnets.len() + adding_others >= MAX_SUBNETS {
        return Err(SubnetError::TooManySubnets {
            max: MAX_SUBNETS as u32,
        });
    }
    let Some(module) = state::with(|s| s.store_module.module()) else {
        return Err(SubnetError::NoStoreModule);
    };
    let needed = rt.create_canister_fee().saturating_add(arg.store_cycles);
    let available = rt.liquid_cycles_balance();
    if available < needed {
        return Err(SubnetError::InsufficientCycles { available, needed });
    }
    let store = rt
        .create_canister_on(arg.subnet, vec![rt.self_id()], arg.store_cycles)
        .await
        .map_err(|e| SubnetError::CreateFailed(e.message))?;
    // Recorded before its module is installed: a store whose install fails is not left behind
    // with its cycles, and gets the module at its next record (`chunk_store::call_store`).
    state::with_mut(|s| {
        let mut st = s.subnets_state();
        st.subnets.push(SubnetStore {
            subnet: arg.subnet,
            store,
            canisters: 0,
            mirror: MirrorState::default(),
        });
        s.set_subnets_state(st);
    });
    install_store(rt, store, module)
        .await
        .map_err(|e| SubnetError::StoreInstallFailed {
            store,
            message: e.message,
        })?;
    let store_ref = StoreRef {
        subnet: arg.subnet,
        canister: store,
        own: false,
    };
    chunk_store::mirror_needed(rt, &store_ref)
        .await
        .map_err(SubnetError::Mirror)?;
    Ok(view(rt)
        .subnets
        .into_iter()
        .find(|i| i.subnet == arg.subnet)
        .expect("the subnet was just added"))
}

thread_local! {
    /// Subnets an `add_subnet` is creating a store on. The manager runs other messages while
    /// one awaits the CMC, so a second call for the same subnet would otherwise create a
    /// second store before the first is recorded.
    static ADDING: std::cell::RefCell<std::collections::BTreeSet<Principal>> =
        const { std::cell::RefCell::new(std::collections::BTreeSet::new()) };
}

/// A subnet being added, until dropped (added or failed).
struct Adding(Principal);

impl Adding {
    /// `None` if another call is adding `subnet`.
    fn claim(subnet: Principal) -> Option<Self> {
        ADDING
            .with(|a| a.borrow_mut().insert(subnet))
            .then_some(Adding(subnet))
    }
}

impl Drop for Adding {
    fn drop(&mut self) {
        ADDING.with(|a| a.borrow_mut().remove(&self.0));
    }
}

/// Installs the store module `module` in the empty canister `store` (mode `install`, which
/// the IC refuses for a canister that has a module, so a store's records are never wiped).
pub(crate) async fn install_store<R: Runtime>(
    rt: &R,
    store: Principal,
    module: Vec<u8>,
) -> CallResult<()> {
    let init = Encode!(&StoreInit {
        manager: rt.self_id()
    })
    .expect("encoding the store's init argument");
    rt.install_code(store, CanisterInstallMode::Install, module, init)
        .await
}

/// A store added before stores ran code has no module: installs the store module in it, if one
/// is set. Whether it was installed.
pub(crate) async fn install_missing_store_module<R: Runtime>(rt: &R, store: Principal) -> bool {
    let Some(module) = state::with(|s| s.store_module.module()) else {
        return false;
    };
    install_store(rt, store, module).await.is_ok()
}

/// Brings every added subnet's store to the store module set now: one it runs already is left
/// alone, one without a module gets it installed, any other is upgraded (mode `upgrade`, so
/// the releases it recorded stay; the store's `post_upgrade` checks its layout and a trap
/// keeps the previous module). One store's failure does not stop the others.
pub async fn upgrade_stores<R: Runtime>(rt: &R) -> Result<Vec<StoreUpgrade>, SubnetError> {
    let (Some(module), Some(hash)) =
        state::with(|s| (s.store_module.module(), s.store_module.hash()))
    else {
        return Err(SubnetError::NoStoreModule);
    };
    let stores = state::with(|s| s.subnets_state()).subnets;
    let mut done = Vec::with_capacity(stores.len());
    for s in stores {
        let outcome = match rt.canister_status(s.store).await {
            Err(e) => StoreUpgradeOutcome::Failed(e.message),
            Ok(status) if status.module_hash.as_deref() == Some(&hash[..]) => {
                StoreUpgradeOutcome::Current
            }
            Ok(status) => match status.module_hash {
                None => install_store(rt, s.store, module.clone())
                    .await
                    .map(|()| StoreUpgradeOutcome::Installed),
                Some(_) => {
                    let no_arg = Encode!().expect("encoding no argument");
                    let upgrade = CanisterInstallMode::Upgrade(None);
                    rt.install_code(s.store, upgrade, module.clone(), no_arg)
                        .await
                        .map(|()| StoreUpgradeOutcome::Upgraded)
                }
            }
            .unwrap_or_else(|e| StoreUpgradeOutcome::Failed(e.message)),
        };
        done.push(StoreUpgrade {
            subnet: s.subnet,
            store: s.store,
            outcome,
        });
    }
    Ok(done)
}

// --- The cycles minting canister's `create_canister` (its published candid interface) ---

#[derive(CandidType, Deserialize)]
struct CmcSettings {
    controllers: Option<Vec<Principal>>,
}

#[derive(CandidType, Deserialize)]
struct SubnetRecord {
    subnet: Principal,
}

#[derive(CandidType, Deserialize)]
struct SubnetFilter {
    subnet_type: Option<String>,
}

#[derive(CandidType, Deserialize)]
enum SubnetSelection {
    Subnet(SubnetRecord),
    #[allow(dead_code)]
    Filter(SubnetFilter),
}

#[derive(CandidType, Deserialize)]
struct CreateCanisterArg {
    settings: Option<CmcSettings>,
    subnet_type: Option<String>,
    subnet_selection: Option<SubnetSelection>,
}

#[derive(CandidType, Deserialize)]
enum CreateCanisterError {
    Refunded {
        refund_amount: Nat,
        create_error: String,
    },
}

#[derive(CandidType, Deserialize)]
enum CreateCanisterResult {
    Ok(Principal),
    Err(CreateCanisterError),
}

/// Reject code of a CMC refusal as the manager records it: the canister's own reject
/// (`CANISTER_REJECT`), since the CMC answered but created nothing.
const CMC_REFUSED: u32 = 4;

pub(crate) fn cmc_create_args(subnet: Principal, controllers: Vec<Principal>) -> Vec<u8> {
    Encode!(&CreateCanisterArg {
        settings: Some(CmcSettings {
            controllers: Some(controllers),
        }),
        subnet_type: None,
        subnet_selection: Some(SubnetSelection::Subnet(SubnetRecord { subnet })),
    })
    .expect("encoding the CMC's create_canister argument")
}

pub(crate) fn cmc_create_reply(reply: &[u8]) -> CallResult<Principal> {
    match Decode!(reply, CreateCanisterResult).map_err(|e| bad_reply("create_canister", e))? {
        CreateCanisterResult::Ok(id) => Ok(id),
        CreateCanisterResult::Err(CreateCanisterError::Refunded {
            refund_amount,
            create_error,
        }) => Err(CallError {
            reject_code: CMC_REFUSED,
            message: format!("{create_error} (refunded {refund_amount} cycles)"),
        }),
    }
}

/// The subnet and controllers of an encoded CMC `create_canister` argument (for the fake IC).
#[cfg(test)]
pub(crate) fn decode_cmc_create_args(
    args: &[u8],
) -> Result<(Principal, Vec<Principal>), candid::Error> {
    let a = Decode!(args, CreateCanisterArg)?;
    let subnet = match a.subnet_selection {
        Some(SubnetSelection::Subnet(r)) => r.subnet,
        _ => Principal::anonymous(),
    };
    let controllers = a.settings.and_then(|s| s.controllers).unwrap_or_default();
    Ok((subnet, controllers))
}

#[cfg(test)]
pub(crate) fn encode_cmc_created(id: Principal) -> Vec<u8> {
    Encode!(&CreateCanisterResult::Ok(id)).expect("encoding a CMC reply")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cmc_id_is_the_mainnet_one() {
        assert_eq!(CMC.to_text(), "rkp4c-7iaaa-aaaaa-aaaca-cai");
    }

    #[test]
    fn a_refusal_is_an_error_naming_the_refund() {
        let reply = Encode!(&CreateCanisterResult::Err(CreateCanisterError::Refunded {
            refund_amount: Nat::from(7u32),
            create_error: "no such subnet".into(),
        }))
        .unwrap();
        let e = cmc_create_reply(&reply).unwrap_err();
        assert_eq!(e.reject_code, CMC_REFUSED);
        assert!(e.message.contains("no such subnet") && e.message.contains('7'));
        let id = Principal::from_slice(&[9; 10]);
        let ok = Encode!(&CreateCanisterResult::Ok(id)).unwrap();
        assert_eq!(cmc_create_reply(&ok), Ok(id));
    }
}
