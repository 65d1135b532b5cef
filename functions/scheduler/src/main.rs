//! scheduler: periodic chores (re-syncs, upload expiry, outbox sweep), every minute.

use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    chatpad::telemetry::init();
    let deps = chatpad::Deps::from_env()?;
    let relay = chatpad::outbox::Relay::from_env(&chatpad::aws::sdk_config().await)?;
    lambda_runtime::run(service_fn(|_event: LambdaEvent<serde_json::Value>| async {
        Ok::<_, Error>(scheduler::run(&deps.db, &relay).await?)
    }))
    .await
}
