package tlv_test

import (
	"fmt"

	"github.com/spdlab/spdlab/reference/tlv"
)

func ExampleBuilder() {
	var b tlv.Builder
	b.AddString(0x85, "SVL01")
	b.AddConstructed(0x61, func(b *tlv.Builder) {
		b.AddUint(0xDF01, 1, 1)
		b.AddUint(0x9F36, 4, 42)
	})
	out, err := b.Bytes()
	if err != nil {
		panic(err)
	}
	fmt.Printf("% X\n", out)
	list, _ := tlv.Parse(out)
	atc, _ := tlv.FindPath(list, 0x61, 0x9F36)
	fmt.Println(atc)
	// Output:
	// 85 05 53 56 4C 30 31 61 0B DF 01 01 01 9F 36 04 00 00 00 2A
	// 9F36 [4] 0000002A
}
