use clap::Parser;
use fleet_cli::cli::Cli;
use fleet_cli::commands::{agent_connector, run, terminal_confirm};

fn main() {
    let cli = Cli::parse();
    let json = cli.json;
    let code = match run(&cli, &agent_connector, &mut terminal_confirm) {
        Ok(out) => {
            if json {
                println!("{}", out.json);
            } else {
                println!("{}", out.text);
            }
            0
        }
        Err(err) => {
            if json {
                println!(
                    "{}",
                    serde_json::json!({ "error": { "kind": err.kind(), "message": err.to_string(), "exit_code": err.exit_code() } })
                );
            }
            eprintln!("error: {err}");
            err.exit_code()
        }
    };
    std::process::exit(code);
}
