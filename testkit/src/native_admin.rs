//! librdkafka's C API for what the rdkafka crate (0.39) does not wrap:
//! IncrementalAlterConfigs, and the per-resource errors of AlterConfigs
//! (the crate's `alter_configs` reports every resource as altered).

use std::ffi::{CStr, CString};
use std::ptr;

use rdkafka::admin::AdminClient;
use rdkafka::bindings as rd;
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;

use crate::TIMEOUT;

type Admin = AdminClient<DefaultClientContext>;

pub const TOPIC: rd::rd_kafka_ResourceType_t = rd::rd_kafka_ResourceType_t::RD_KAFKA_RESOURCE_TOPIC;
pub const BROKER: rd::rd_kafka_ResourceType_t =
    rd::rd_kafka_ResourceType_t::RD_KAFKA_RESOURCE_BROKER;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Set,
    Delete,
    Append,
    Subtract,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// AlterConfigs: only `Op::Set`, the given keys replace the rest.
    Legacy,
    IncrementalAlterConfigs,
}

fn string(p: *const std::os::raw::c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: librdkafka hands out NUL-terminated strings that live as
    // long as the event they come from, which outlives this copy.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// Alter one resource's configs: Ok, or the resource's error code and
/// message. Blocks on librdkafka's queue, so call it from a multi-threaded
/// runtime (`block_in_place`).
pub fn alter_configs(
    admin: &Admin,
    api: Api,
    restype: rd::rd_kafka_ResourceType_t,
    name: &str,
    ops: &[(&str, Op, Option<&str>)],
) -> Result<(), (RDKafkaErrorCode, String)> {
    use rd::rd_kafka_AlterConfigOpType_t as T;
    use rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR as NO_ERROR;
    tokio::task::block_in_place(|| {
        let rk = admin.inner().native_ptr();
        let name = CString::new(name).unwrap();
        // SAFETY: every pointer passed to librdkafka is live for the
        // call; librdkafka copies the resource it is given, and what is
        // created here is destroyed after the result event was read.
        unsafe {
            let res = rd::rd_kafka_ConfigResource_new(restype, name.as_ptr());
            assert!(!res.is_null());
            for (key, op, value) in ops {
                let key = CString::new(*key).unwrap();
                let value = value.map(|v| CString::new(v).unwrap());
                let value_ptr = value.as_ref().map_or(ptr::null(), |v| v.as_ptr());
                if api == Api::Legacy {
                    assert_eq!(*op, Op::Set, "AlterConfigs only sets");
                    let err = rd::rd_kafka_ConfigResource_set_config(res, key.as_ptr(), value_ptr);
                    assert_eq!(err, NO_ERROR);
                    continue;
                }
                let op = match op {
                    Op::Set => T::RD_KAFKA_ALTER_CONFIG_OP_TYPE_SET,
                    Op::Delete => T::RD_KAFKA_ALTER_CONFIG_OP_TYPE_DELETE,
                    Op::Append => T::RD_KAFKA_ALTER_CONFIG_OP_TYPE_APPEND,
                    Op::Subtract => T::RD_KAFKA_ALTER_CONFIG_OP_TYPE_SUBTRACT,
                };
                let err = rd::rd_kafka_ConfigResource_add_incremental_config(
                    res,
                    key.as_ptr(),
                    op,
                    value_ptr,
                );
                assert!(err.is_null(), "{}", string(rd::rd_kafka_error_string(err)));
            }
            let for_api = match api {
                Api::Legacy => rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_ALTERCONFIGS,
                Api::IncrementalAlterConfigs => {
                    rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_INCREMENTALALTERCONFIGS
                }
            };
            let options = rd::rd_kafka_AdminOptions_new(rk, for_api);
            let queue = rd::rd_kafka_queue_new(rk);
            let mut resources = [res];
            match api {
                Api::Legacy => {
                    rd::rd_kafka_AlterConfigs(rk, resources.as_mut_ptr(), 1, options, queue)
                }
                Api::IncrementalAlterConfigs => rd::rd_kafka_IncrementalAlterConfigs(
                    rk,
                    resources.as_mut_ptr(),
                    1,
                    options,
                    queue,
                ),
            }
            let event = rd::rd_kafka_queue_poll(queue, TIMEOUT.as_millis() as i32);
            assert!(!event.is_null(), "no {api:?} result");
            let event_err = rd::rd_kafka_event_error(event);
            let outcome = if event_err != NO_ERROR {
                Err((
                    RDKafkaErrorCode::from(event_err),
                    string(rd::rd_kafka_event_error_string(event)),
                ))
            } else {
                let mut count = 0usize;
                let list = match api {
                    Api::Legacy => rd::rd_kafka_AlterConfigs_result_resources(
                        rd::rd_kafka_event_AlterConfigs_result(event),
                        &mut count,
                    ),
                    Api::IncrementalAlterConfigs => {
                        rd::rd_kafka_IncrementalAlterConfigs_result_resources(
                            rd::rd_kafka_event_IncrementalAlterConfigs_result(event),
                            &mut count,
                        )
                    }
                };
                assert_eq!(count, 1);
                let r = *list;
                match rd::rd_kafka_ConfigResource_error(r) {
                    NO_ERROR => Ok(()),
                    code => Err((
                        RDKafkaErrorCode::from(code),
                        string(rd::rd_kafka_ConfigResource_error_string(r)),
                    )),
                }
            };
            rd::rd_kafka_event_destroy(event);
            rd::rd_kafka_queue_destroy(queue);
            rd::rd_kafka_AdminOptions_destroy(options);
            rd::rd_kafka_ConfigResource_destroy(res);
            outcome
        }
    })
}
