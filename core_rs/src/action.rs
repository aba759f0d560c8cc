//! Which actions each OCPP version defines, and who may initiate them.
//!
//! The schemas say what a payload looks like, not who sends it; direction comes from the
//! specifications (1.6 feature profiles and Security Whitepaper Ed.3; 2.0.1/2.1 Part 2 functional
//! blocks), transcribed in `shared/reference/peers.md` §5. `schema::SchemaSet::load` cross-checks
//! these tables against the schema files, so a table and a schema directory can never disagree
//! silently.

use crate::version::OcppVersion;

/// Who initiates an action.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Initiator {
    /// The charging station sends the request (CS→CSMS).
    Station,
    /// The CSMS sends the request (CSMS→CS).
    Csms,
    /// Either side may (DataTransfer).
    Both,
}

/// How an action travels on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// CALL answered by CALLRESULT/CALLERROR.
    Call,
    /// 2.1 SEND: unconfirmed, no response schema (Part 4 §4.2.4).
    Send,
}

/// One action of one version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ActionSpec {
    pub name: &'static str,
    pub initiator: Initiator,
    pub delivery: Delivery,
}

impl ActionSpec {
    /// Whether a peer playing `sender` may send this action's request.
    #[must_use]
    pub fn may_be_sent_by(&self, sender: Initiator) -> bool {
        self.initiator == Initiator::Both || self.initiator == sender
    }
}

const V16_STATION: &[&str] = &[
    "Authorize",
    "BootNotification",
    "DiagnosticsStatusNotification",
    "FirmwareStatusNotification",
    "Heartbeat",
    "LogStatusNotification",
    "MeterValues",
    "SecurityEventNotification",
    "SignCertificate",
    "SignedFirmwareStatusNotification",
    "StartTransaction",
    "StatusNotification",
    "StopTransaction",
];

const V16_CSMS: &[&str] = &[
    "CancelReservation",
    "CertificateSigned",
    "ChangeAvailability",
    "ChangeConfiguration",
    "ClearCache",
    "ClearChargingProfile",
    "DeleteCertificate",
    "ExtendedTriggerMessage",
    "GetCompositeSchedule",
    "GetConfiguration",
    "GetDiagnostics",
    "GetInstalledCertificateIds",
    "GetLocalListVersion",
    "GetLog",
    "InstallCertificate",
    "RemoteStartTransaction",
    "RemoteStopTransaction",
    "ReserveNow",
    "Reset",
    "SendLocalList",
    "SetChargingProfile",
    "SignedUpdateFirmware",
    "TriggerMessage",
    "UnlockConnector",
    "UpdateFirmware",
];

const V201_STATION: &[&str] = &[
    "Authorize",
    "BootNotification",
    "ClearedChargingLimit",
    "FirmwareStatusNotification",
    "Get15118EVCertificate",
    "GetCertificateStatus",
    "Heartbeat",
    "LogStatusNotification",
    "MeterValues",
    "NotifyChargingLimit",
    "NotifyCustomerInformation",
    "NotifyDisplayMessages",
    "NotifyEVChargingNeeds",
    "NotifyEVChargingSchedule",
    "NotifyEvent",
    "NotifyMonitoringReport",
    "NotifyReport",
    "PublishFirmwareStatusNotification",
    "ReportChargingProfiles",
    "ReservationStatusUpdate",
    "SecurityEventNotification",
    "SignCertificate",
    "StatusNotification",
    "TransactionEvent",
];

const V201_CSMS: &[&str] = &[
    "CancelReservation",
    "CertificateSigned",
    "ChangeAvailability",
    "ClearCache",
    "ClearChargingProfile",
    "ClearDisplayMessage",
    "ClearVariableMonitoring",
    "CostUpdated",
    "CustomerInformation",
    "DeleteCertificate",
    "GetBaseReport",
    "GetChargingProfiles",
    "GetCompositeSchedule",
    "GetDisplayMessages",
    "GetInstalledCertificateIds",
    "GetLocalListVersion",
    "GetLog",
    "GetMonitoringReport",
    "GetReport",
    "GetTransactionStatus",
    "GetVariables",
    "InstallCertificate",
    "PublishFirmware",
    "RequestStartTransaction",
    "RequestStopTransaction",
    "ReserveNow",
    "Reset",
    "SendLocalList",
    "SetChargingProfile",
    "SetDisplayMessage",
    "SetMonitoringBase",
    "SetMonitoringLevel",
    "SetNetworkProfile",
    "SetVariableMonitoring",
    "SetVariables",
    "TriggerMessage",
    "UnlockConnector",
    "UnpublishFirmware",
    "UpdateFirmware",
];

/// Station-initiated actions new in 2.1 (besides NotifyPeriodicEventStream, a SEND).
const V21_STATION_NEW: &[&str] = &[
    "BatterySwap",
    "ClosePeriodicEventStream",
    "GetCertificateChainStatus",
    "NotifyDERAlarm",
    "NotifyDERStartStop",
    "NotifyPriorityCharging",
    "NotifySettlement",
    "OpenPeriodicEventStream",
    "PullDynamicScheduleUpdate",
    "ReportDERControl",
    "VatNumberValidation",
];

/// CSMS-initiated actions new in 2.1.
const V21_CSMS_NEW: &[&str] = &[
    "AFRRSignal",
    "AdjustPeriodicEventStream",
    "ChangeTransactionTariff",
    "ClearDERControl",
    "ClearTariffs",
    "GetDERControl",
    "GetPeriodicEventStream",
    "GetTariffs",
    "NotifyAllowedEnergyTransfer",
    "NotifyWebPaymentStarted",
    "RequestBatterySwap",
    "SetDERControl",
    "SetDefaultTariff",
    "UpdateDynamicSchedule",
    "UsePriorityCharging",
];

const V21_SEND_FROM_STATION: &[&str] = &["NotifyPeriodicEventStream"];

/// Every action of `version`, sorted by name.
#[must_use]
pub fn actions(version: OcppVersion) -> Vec<ActionSpec> {
    let call = |initiator| {
        move |name: &&'static str| ActionSpec {
            name,
            initiator,
            delivery: Delivery::Call,
        }
    };
    let mut out: Vec<ActionSpec> = Vec::new();
    let (station, csms): (Vec<&[&str]>, Vec<&[&str]>) = match version {
        OcppVersion::V16 => (vec![V16_STATION], vec![V16_CSMS]),
        OcppVersion::V201 => (vec![V201_STATION], vec![V201_CSMS]),
        OcppVersion::V21 => (
            vec![V201_STATION, V21_STATION_NEW],
            vec![V201_CSMS, V21_CSMS_NEW],
        ),
    };
    for table in station {
        out.extend(table.iter().map(call(Initiator::Station)));
    }
    for table in csms {
        out.extend(table.iter().map(call(Initiator::Csms)));
    }
    out.push(ActionSpec {
        name: "DataTransfer",
        initiator: Initiator::Both,
        delivery: Delivery::Call,
    });
    if version == OcppVersion::V21 {
        out.extend(V21_SEND_FROM_STATION.iter().map(|name| ActionSpec {
            name,
            initiator: Initiator::Station,
            delivery: Delivery::Send,
        }));
    }
    out.sort_by_key(|a| a.name);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(version: OcppVersion, sender: Initiator) -> usize {
        actions(version)
            .iter()
            .filter(|a| a.may_be_sent_by(sender))
            .count()
    }

    /// The counts of `peers.md` §5 (DataTransfer counted in both directions).
    #[test]
    fn counts_match_the_inventory() {
        assert_eq!(actions(OcppVersion::V16).len(), 39);
        assert_eq!(actions(OcppVersion::V201).len(), 64);
        assert_eq!(actions(OcppVersion::V21).len(), 91);
        assert_eq!(count(OcppVersion::V16, Initiator::Station), 14);
        assert_eq!(count(OcppVersion::V16, Initiator::Csms), 26);
        assert_eq!(count(OcppVersion::V201, Initiator::Station), 25);
        assert_eq!(count(OcppVersion::V201, Initiator::Csms), 40);
        assert_eq!(count(OcppVersion::V21, Initiator::Station), 37);
        assert_eq!(count(OcppVersion::V21, Initiator::Csms), 55);
    }

    #[test]
    fn names_are_unique() {
        for v in OcppVersion::ALL {
            let mut names: Vec<_> = actions(v).iter().map(|a| a.name).collect();
            names.dedup();
            assert_eq!(names.len(), actions(v).len(), "{v:?}");
        }
    }
}
