package sdk

import (
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/labelbackup/label-backup/sdk/internal/gen/labelbackup/plugin/v1"
)

func kindToProto(k Kind) pb.Kind {
	switch k {
	case KindDumper:
		return pb.Kind_KIND_DUMPER
	case KindSink:
		return pb.Kind_KIND_SINK
	}
	return pb.Kind_KIND_UNSPECIFIED
}

func kindFromProto(k pb.Kind) Kind {
	switch k {
	case pb.Kind_KIND_DUMPER:
		return KindDumper
	case pb.Kind_KIND_SINK:
		return KindSink
	}
	return ""
}

func infoToProto(i Info) *pb.DescribeResponse {
	out := &pb.DescribeResponse{
		Name:             i.Name,
		Version:          i.Version,
		Kind:             kindToProto(i.Kind),
		ProtocolVersion:  i.ProtocolVersion,
		SdkVersion:       i.SDKVersion,
		Capabilities:     i.Capabilities,
		DefaultExtension: i.DefaultExtension,
		SdkFeatures:      i.SDKFeatures,
	}
	for _, o := range i.Options {
		out.Options = append(out.Options, &pb.OptionSpec{
			Name: o.Name, Description: o.Description, Secret: o.Secret, Required: o.Required,
		})
	}
	return out
}

func infoFromProto(p *pb.DescribeResponse) Info {
	out := Info{
		Name:             p.GetName(),
		Version:          p.GetVersion(),
		Kind:             kindFromProto(p.GetKind()),
		ProtocolVersion:  p.GetProtocolVersion(),
		SDKVersion:       p.GetSdkVersion(),
		Capabilities:     p.GetCapabilities(),
		DefaultExtension: p.GetDefaultExtension(),
		SDKFeatures:      p.GetSdkFeatures(),
	}
	for _, o := range p.GetOptions() {
		out.Options = append(out.Options, Option{
			Name: o.GetName(), Description: o.GetDescription(), Secret: o.GetSecret(), Required: o.GetRequired(),
		})
	}
	return out
}

func targetToProto(t Target) *pb.Target {
	return &pb.Target{
		Connection:       t.Connection,
		Database:         t.Database,
		Options:          t.Options,
		Container:        &pb.ContainerRef{Id: t.Container.ID, Name: t.Container.Name},
		ContainerEnv:     t.ContainerEnv,
		ContainerCommand: t.ContainerCommand,
	}
}

func targetFromProto(p *pb.Target) Target {
	return Target{
		Connection:       p.GetConnection(),
		Database:         p.GetDatabase(),
		Options:          p.GetOptions(),
		Container:        ContainerRef{ID: p.GetContainer().GetId(), Name: p.GetContainer().GetName()},
		ContainerEnv:     p.GetContainerEnv(),
		ContainerCommand: p.GetContainerCommand(),
	}
}

func objectToProto(o ObjectInfo) *pb.ObjectInfo {
	out := &pb.ObjectInfo{Key: o.Key, Size: uint64(o.Size), Url: o.URL, Sha256: o.SHA256}
	if !o.Modified.IsZero() {
		out.Modified = timestamppb.New(o.Modified)
	}
	return out
}

func objectFromProto(p *pb.ObjectInfo) ObjectInfo {
	out := ObjectInfo{Key: p.GetKey(), Size: int64(p.GetSize()), URL: p.GetUrl(), SHA256: p.GetSha256()}
	if p.GetModified() != nil {
		out.Modified = p.GetModified().AsTime()
	}
	return out
}
