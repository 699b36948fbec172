//! Wire types to domain types and back. Every field of a request is parsed
//! here, once; violations name the field as the client wrote it.

use chrono::{DateTime, Utc};
use jalon_core::{
    Error, Result,
    authz::Role,
    error::Violations,
    organisation::{self, NewOrganisation, Organisation, OrganisationPatch, etag},
    person::{self, NewPerson, Person, PersonPatch},
    portfolio,
    values::{
        CurrencyCode, DiscountRate, DisplayName, Email, ExternalRef, Month, ShortText, Slug,
        Subject, parse_id,
    },
};
use jalon_proto::v1 as pb;
use jalon_store::idempotency::IdempotencyKey;
use prost::Message;
use prost_types::{FieldMask, Timestamp};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// Money on the wire: a decimal string and its currency.
pub fn money_out(m: jalon_core::values::Money) -> pb::Money {
    pb::Money {
        currency_code: m.currency().as_str().to_owned(),
        amount: m.to_string(),
    }
}

/// A UTC time on the wire.
/// An optional wire time (`None` when absent); an out-of-range one is
/// refused.
pub fn time_in(t: Option<&Timestamp>) -> Result<Option<DateTime<Utc>>, String> {
    match t {
        None => Ok(None),
        Some(t) => u32::try_from(t.nanos)
            .ok()
            .and_then(|n| DateTime::from_timestamp(t.seconds, n))
            .map(Some)
            .ok_or_else(|| "is not a valid time".to_owned()),
    }
}

pub fn timestamp(time: DateTime<Utc>) -> Timestamp {
    Timestamp {
        seconds: time.timestamp(),
        nanos: i32::try_from(time.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

/// Parses a required id field.
pub fn id(field: &str, raw: &str) -> Result<Uuid> {
    parse_id(raw).map_err(|description| Error::invalid(field, description))
}

pub fn role_to_proto(role: Role) -> pb::Role {
    match role {
        Role::Admin => pb::Role::Admin,
        Role::Director => pb::Role::Director,
        Role::Member => pb::Role::Member,
        Role::Viewer => pb::Role::Viewer,
        Role::Integration => pb::Role::Integration,
    }
}

/// `None` for ROLE_UNSPECIFIED.
pub fn role_from_proto(raw: i32) -> Result<Option<Role>, String> {
    match pb::Role::try_from(raw) {
        Ok(pb::Role::Unspecified) => Ok(None),
        Ok(pb::Role::Admin) => Ok(Some(Role::Admin)),
        Ok(pb::Role::Director) => Ok(Some(Role::Director)),
        Ok(pb::Role::Member) => Ok(Some(Role::Member)),
        Ok(pb::Role::Viewer) => Ok(Some(Role::Viewer)),
        Ok(pb::Role::Integration) => Ok(Some(Role::Integration)),
        Err(_) => Err(format!("{raw} is not a role")),
    }
}

pub fn organisation_to_proto(o: Organisation) -> pb::Organisation {
    pb::Organisation {
        id: o.id.to_string(),
        display_name: o.display_name,
        slug: o.slug,
        default_currency: o.default_currency,
        discount_rate: o.discount_rate,
        fiscal_year_start_month: i32::from(o.fiscal_year_start_month),
        external_ref: o.external_ref,
        create_time: Some(timestamp(o.create_time)),
        update_time: Some(timestamp(o.update_time)),
        delete_time: o.delete_time.map(timestamp),
        etag: etag(o.version),
        gate_overdue_days: i32::try_from(o.gate_overdue_days).unwrap_or(i32::MAX),
    }
}

pub fn person_to_proto(p: Person) -> pb::Person {
    pb::Person {
        id: p.id.to_string(),
        organisation_id: p.organisation_id.to_string(),
        subject: p.subject,
        email: p.email,
        display_name: p.display_name,
        department: p.department,
        job_title: p.job_title,
        manager_id: p.manager_id.map(|m| m.to_string()).unwrap_or_default(),
        role: role_to_proto(p.role) as i32,
        active: p.active,
        external_id: p.external_id,
        create_time: Some(timestamp(p.create_time)),
        update_time: Some(timestamp(p.update_time)),
        deactivate_time: p.deactivate_time.map(timestamp),
        etag: etag(p.version),
    }
}

fn optional_ref(raw: Option<&str>) -> Result<Option<ExternalRef>, String> {
    match raw {
        None => Ok(None),
        Some(r) => ExternalRef::parse(r).map(Some),
    }
}

fn optional_manager(raw: &str) -> Result<Option<Uuid>, String> {
    if raw.is_empty() {
        Ok(None)
    } else {
        parse_id(raw).map(Some)
    }
}

/// A required message field: `INVALID_ARGUMENT` naming it when absent.
pub fn required<T>(field: &str, value: Option<T>) -> Result<T> {
    value.ok_or_else(|| Error::invalid(field, "is required"))
}

pub fn new_organisation(o: &pb::Organisation) -> Result<NewOrganisation> {
    let mut v = Violations::new();
    let display_name = v.check(
        "organisation.display_name",
        DisplayName::parse(&o.display_name),
    );
    let slug = v.check("organisation.slug", Slug::parse(&o.slug));
    let currency = v.check(
        "organisation.default_currency",
        CurrencyCode::parse(&o.default_currency),
    );
    let rate = v.check(
        "organisation.discount_rate",
        DiscountRate::parse(&o.discount_rate),
    );
    let month = if o.fiscal_year_start_month == 0 {
        Some(Month::JANUARY)
    } else {
        v.check(
            "organisation.fiscal_year_start_month",
            Month::parse(o.fiscal_year_start_month),
        )
    };
    let gate_overdue_days = if o.gate_overdue_days == 0 {
        Some(portfolio::DEFAULT_GATE_OVERDUE_DAYS)
    } else {
        v.check(
            "organisation.gate_overdue_days",
            portfolio::parse_gate_overdue_days(o.gate_overdue_days),
        )
    };
    let external_ref = v.check(
        "organisation.external_ref",
        optional_ref(o.external_ref.as_deref()),
    );
    match (
        display_name,
        slug,
        currency,
        rate,
        month,
        external_ref,
        gate_overdue_days,
    ) {
        (
            Some(display_name),
            Some(slug),
            Some(default_currency),
            Some(discount_rate),
            Some(fiscal_year_start_month),
            Some(external_ref),
            Some(gate_overdue_days),
        ) if v.is_empty() => Ok(NewOrganisation {
            display_name,
            slug,
            default_currency,
            discount_rate,
            fiscal_year_start_month,
            external_ref,
            gate_overdue_days,
        }),
        _ => Err(v
            .finish()
            .err()
            .unwrap_or_else(|| Error::invalid("organisation", "is invalid"))),
    }
}

/// The paths of an update mask, each one allowed.
pub fn mask_paths(mask: Option<&FieldMask>, allowed: &[&str]) -> Result<Vec<String>> {
    let paths = mask.map(|m| m.paths.clone()).unwrap_or_default();
    if paths.is_empty() {
        return Err(Error::invalid(
            "update_mask",
            "must name at least one field to update",
        ));
    }
    let mut v = Violations::new();
    for path in &paths {
        if !allowed.contains(&path.as_str()) {
            v.push(
                "update_mask",
                format!(
                    "'{path}' cannot be updated; updatable: {}",
                    allowed.join(", ")
                ),
            );
        }
    }
    v.finish()?;
    Ok(paths)
}

pub fn organisation_patch(
    o: &pb::Organisation,
    mask: Option<&FieldMask>,
) -> Result<OrganisationPatch> {
    let paths = mask_paths(mask, organisation::UPDATABLE_FIELDS)?;
    let mut v = Violations::new();
    let mut patch = OrganisationPatch::default();
    for path in paths {
        let field = format!("organisation.{path}");
        match path.as_str() {
            "display_name" => {
                patch.display_name = v.check(&field, DisplayName::parse(&o.display_name))
            }
            "slug" => patch.slug = v.check(&field, Slug::parse(&o.slug)),
            "default_currency" => {
                patch.default_currency = v.check(&field, CurrencyCode::parse(&o.default_currency))
            }
            "discount_rate" => {
                patch.discount_rate = v.check(&field, DiscountRate::parse(&o.discount_rate))
            }
            "fiscal_year_start_month" => {
                patch.fiscal_year_start_month =
                    v.check(&field, Month::parse(o.fiscal_year_start_month))
            }
            "gate_overdue_days" => {
                patch.gate_overdue_days = v.check(
                    &field,
                    portfolio::parse_gate_overdue_days(o.gate_overdue_days),
                )
            }
            "external_ref" => {
                patch.external_ref = v.check(&field, optional_ref(o.external_ref.as_deref()))
            }
            _ => {}
        }
    }
    v.finish()?;
    Ok(patch)
}

/// A new person; `role` is imposed for an organisation's first admin.
pub fn new_person(p: &pb::Person, prefix: &str, role: Option<Role>) -> Result<NewPerson> {
    let mut v = Violations::new();
    let f = |name: &str| format!("{prefix}.{name}");
    let subject = v.check(&f("subject"), Subject::parse(&p.subject));
    let email = v.check(&f("email"), Email::parse(&p.email));
    let display_name = v.check(&f("display_name"), DisplayName::parse(&p.display_name));
    let department = v.check(&f("department"), ShortText::parse(&p.department));
    let job_title = v.check(&f("job_title"), ShortText::parse(&p.job_title));
    let manager_id = match role {
        Some(_) => Some(None),
        None => v.check(&f("manager_id"), optional_manager(&p.manager_id)),
    };
    let role = match role {
        Some(role) => Some(role),
        None => match role_from_proto(p.role) {
            Ok(Some(role)) => Some(role),
            Ok(None) => {
                v.push(f("role"), "is required");
                None
            }
            Err(e) => {
                v.push(f("role"), e);
                None
            }
        },
    };
    let external_id = v.check(&f("external_id"), optional_ref(p.external_id.as_deref()));
    match (
        subject,
        email,
        display_name,
        department,
        job_title,
        manager_id,
        role,
        external_id,
    ) {
        (
            Some(subject),
            Some(email),
            Some(display_name),
            Some(department),
            Some(job_title),
            Some(manager_id),
            Some(role),
            Some(external_id),
        ) if v.is_empty() => Ok(NewPerson {
            subject,
            email,
            display_name,
            department,
            job_title,
            manager_id,
            role,
            external_id,
        }),
        _ => Err(v
            .finish()
            .err()
            .unwrap_or_else(|| Error::invalid(prefix, "is invalid"))),
    }
}

pub fn person_patch(p: &pb::Person, mask: Option<&FieldMask>) -> Result<PersonPatch> {
    patch_of(p, mask_paths(mask, person::UPDATABLE_FIELDS)?)
}

/// The fields an `UpsertPerson` writes over an existing person.
pub fn person_upsert_patch(p: &pb::Person, mask: Option<&FieldMask>) -> Result<PersonPatch> {
    patch_of(p, mask_paths(mask, person::UPSERTABLE_FIELDS)?)
}

/// The HR identifier that names the person of an `UpsertPerson`.
pub fn upsert_key(p: &pb::Person) -> Result<String> {
    match optional_ref(p.external_id.as_deref()) {
        Ok(Some(key)) => Ok(key.as_str().to_owned()),
        Ok(None) => Err(Error::invalid(
            "person.external_id",
            "is required: it names the person to create or update",
        )),
        Err(e) => Err(Error::invalid("person.external_id", e)),
    }
}

fn patch_of(p: &pb::Person, paths: Vec<String>) -> Result<PersonPatch> {
    let mut v = Violations::new();
    let mut patch = PersonPatch::default();
    for path in paths {
        let field = format!("person.{path}");
        match path.as_str() {
            "subject" => patch.subject = v.check(&field, Subject::parse(&p.subject)),
            "email" => patch.email = v.check(&field, Email::parse(&p.email)),
            "display_name" => {
                patch.display_name = v.check(&field, DisplayName::parse(&p.display_name))
            }
            "department" => patch.department = v.check(&field, ShortText::parse(&p.department)),
            "job_title" => patch.job_title = v.check(&field, ShortText::parse(&p.job_title)),
            "manager_id" => patch.manager_id = v.check(&field, optional_manager(&p.manager_id)),
            "role" => match role_from_proto(p.role) {
                Ok(Some(role)) => patch.role = Some(role),
                Ok(None) => v.push(field, "must be a role"),
                Err(e) => v.push(field, e),
            },
            "external_id" => {
                patch.external_id = v.check(&field, optional_ref(p.external_id.as_deref()))
            }
            _ => {}
        }
    }
    v.finish()?;
    Ok(patch)
}

/// The idempotency key of a Create call: `None` without a `request_id`.
/// `message` is the request with its `request_id` cleared.
pub fn idempotency_key(
    scope: String,
    request_id: &str,
    message: &impl Message,
) -> Result<Option<IdempotencyKey>> {
    if request_id.is_empty() {
        return Ok(None);
    }
    let request_id = Uuid::try_parse(request_id)
        .map_err(|_| Error::invalid("request_id", "must be a UUID when set"))?;
    Ok(Some(IdempotencyKey {
        scope,
        request_id,
        fingerprint: fingerprint(&message.encode_to_vec()),
    }))
}

/// The hex SHA-256 of a request's encoding.
fn fingerprint(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
