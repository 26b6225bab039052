// A rank of --nproc dies with its supervisor, whatever command it runs.
MetaRun.Distributed.RankSupervision.WatchIfSupervised();
return MetaRun.Cli.MetaRunCli.Run(args);
