return MetaRun.Cli.MetaRunCli.Run(args);
